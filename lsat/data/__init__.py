"""Datasets, TALLRec samples and period splits shared by the model core and the stream."""
