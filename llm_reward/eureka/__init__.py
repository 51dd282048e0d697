"""The Eureka track: LLM-written reward code, checked, sandboxed and evolved."""
