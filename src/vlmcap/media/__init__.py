"""Media: video frames, images, and the input formats plugins expect."""
