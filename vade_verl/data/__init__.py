"""Dataset preparation: Hugging Face-style datasets to verl's RL parquet format.

Each preparer is a module with ``main(argv)``, run as ``python -m vade_verl.data.<name>``:

* ``geo3k``: multimodal math in the geo3k layout (``images``, ``problem``, ``answer``): training data.
* ``eval_sets``: the VADE paper's evaluation sets (MathVista, MathVerse, MathVision, ScienceQA,
  ChartQA) as validation files, with the grader the recipes use for them.

Every row gets a stable ``extra_info.index``, the id the VADE sampler keys its posteriors on
(see ``vade_verl.data.rows``).
"""
