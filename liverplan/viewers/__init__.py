"""The Qt desktop app. Depends on the core packages; they never import it."""
