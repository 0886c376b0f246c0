"""The readings path: sensors read on timers, observed (never commanded), kept and published.

One small module per kind (:mod:`.w1`, :mod:`.bme280`, :mod:`.adc`, :mod:`.cpu`,
:mod:`.counter`) over one :mod:`.sampler`; :mod:`.simulated` stands in for every kind on the
simulated board. Like Starlette's package face, this one imports nothing: import the module
you need by its full path.
"""
