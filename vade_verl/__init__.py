"""vade-verl: rollout-efficient group RL plug-ins for verl.

Importing the package imports no verl module; the verl adapters live in their own modules
(``vade_verl.vade.sampler`` and the registration modules) so that the math is usable without verl.
"""

__version__ = "0.1.0"
