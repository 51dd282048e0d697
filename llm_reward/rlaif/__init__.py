"""The text RLAIF track: a small language-model policy trained from AI-judge feedback."""
