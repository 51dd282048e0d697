"""The Motif track: offline stages (collect -> annotate -> fit) and ONI online feedback."""
