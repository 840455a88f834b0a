"""The super-resolution application: ferry's flagship, built on the generic stages.

The tutorial's YCbCr pipeline (:mod:`.pipeline`), the in-graph RGB I/O (:mod:`.rgb_io`),
``ferry upscale`` for images, folders and videos (:mod:`.upscale`, :mod:`.deep16`), the photo
comparison across runtimes (:mod:`.photos`), the automatic runtime choice
(:mod:`.runtime_choice`), training and evaluation (:mod:`.train`, :mod:`.evaluate`,
:mod:`.datasets`) and ``ferry demo`` (:mod:`.demo`). It registers its task with
:mod:`ferry.tasks` (:mod:`.task`); the generic stages never import it.
"""
