"""Online selection: bandits that learn which model to call from the gateway's own feedback.

=============  ===============================================================
``features``   the context vector of a request (signals, prompt length, embedding)
``stats``      sufficient statistics that add (fixed-point counters per model, in
               time buckets), shared by every replica through the state backend
``priors``     prior quality per model: an offline router artifact, the config, a
               new model's declared price
``base``       :class:`OnlineSelector`: choice, bounded exploration, propensity,
               pending contexts awaiting feedback, the periodic sync
``linucb`` ``thompson`` ``ema``   the learners
=============  ===============================================================

Everything here imports numpy: it loads only when a decision names an online method.
"""
