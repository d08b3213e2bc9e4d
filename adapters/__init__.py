"""The learning core: base LM, TALLRec prompts, LoRA training and scoring, LSAT combination."""
