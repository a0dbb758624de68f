"""Ways to run the model service other than inside the app's own process.

    ray_serve   MelodyService on N Ray Serve replicas, and the client the Studio calls instead
                (needs the optional Ray extra: requirements-ray.txt)
"""
