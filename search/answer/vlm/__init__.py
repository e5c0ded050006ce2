"""Vision-language model backends: a prompt of text and images in, a stream of answer text out."""
