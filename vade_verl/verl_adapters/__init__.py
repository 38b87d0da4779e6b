"""The shared verl adapters: the only code that knows verl's batch, metrics and dataset layouts.

* ``batch``: reads a verl ``DataProto`` (and dataset rows) into the plain records the methods consume.
* ``rewards``: correctness rules: how a verl reward score becomes evidence (``correctness=auto|<threshold>|fractional``).
* ``metrics``: puts a plug-in's metrics into the running verl trainer step's metrics.
* ``data_check``: start-time data checks (image rows vs model, image-token lengths) naming the config key.
* ``curriculum_sampler``: the verl curriculum-sampler base VADE, MoPPS and GRESO subclass (feedback, resume, metrics).
* ``sampler_config``: the options those samplers share and the parser of a ``data.sampler.<method>`` block.
"""
