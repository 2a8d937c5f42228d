"""Scale-out on a Ray cluster: the session (:mod:`~core.scale.session`), the training
tasks (:mod:`~core.scale.tasks`) and their driver (:mod:`~core.scale.train`), and
batch prediction with Ray Data (:mod:`~core.scale.batch`).

Ray is imported only inside these modules' functions, so the one-process path
never needs it installed.
"""
