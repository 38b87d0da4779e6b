"""A tiny, locally built model and synthetic task for the CPU regression run of verl's trainer.

Nothing here is downloaded: ``model.py`` builds a word-level tokenizer with the ``tokenizers`` library and a
Qwen2 model with random weights; ``task.py`` draws "how many squares?" images with PIL and scores answers
with a rule; ``build.py`` writes both to a folder (model + verl parquet). ``hf_server.py`` is the thin
adapter that lets verl 0.7.1's agent-loop trainer generate with plain ``transformers`` on CPU.
"""
