"""lsat-stream: long- and short-term LoRA adapters for an LLM recommender fed by a stream."""

__version__ = "0.1.0"
