"""Answers with citations: a question, the calibrated top hits as numbered evidence, a bounded prompt, a
vision-language model's streamed reply, and its citations mapped back to items and moments
(answerer.py); the VLM backends behind one interface (vlm/: local transformers, OpenAI-compatible
servers, Anthropic).

May import: the ground floor, encode/, storage/ and query/ (answers are built on the engine's hits).
"""
