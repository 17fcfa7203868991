"""The editing canvas: the radiograph, its mask overlay, and the tools that paint on it."""
