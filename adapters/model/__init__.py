"""The model floor: base LM, TALLRec prompts, forward/scoring, LoRA training, merging, combining."""
