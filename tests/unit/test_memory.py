import gc

from core.memory import THRESHOLDS, settle_heap


def test_settle_heap_freezes_start_up_objects_and_raises_thresholds() -> None:
    before = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_threshold() == THRESHOLDS
        # What existed is now in the permanent generation, out of every collection's walk.
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
