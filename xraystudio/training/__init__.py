"""Training loops for the project's models; heavy imports happen inside the functions."""
