from tests.drills.world import kube, kube_sim, make_world

__all__ = ["kube", "kube_sim", "make_world"]
