"""A one-line progress bar with ETA on stderr: `label [#####.....] 120/600  ETA 0:45  loss 2.31`."""
import sys
import time


def _clock(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}" if minutes >= 60 else f"{minutes}:{seconds:02d}"


class Progress:
    """update(done, note) redraws at most every `interval` seconds; close() prints the total time.
    The ETA assumes the remaining items take as long as the mean so far."""

    def __init__(self, label, total, enabled=True, interval=0.2, width=30):
        self.label, self.total, self.enabled, self.interval, self.width = label, total, enabled, interval, width
        self.start = time.perf_counter()
        self.last_draw = float("-inf")

    def update(self, done, note=""):
        now = time.perf_counter()
        if not self.enabled or (now - self.last_draw < self.interval and done < self.total):
            return
        self.last_draw = now
        filled = self.width * done // max(self.total, 1)
        elapsed = now - self.start
        eta = elapsed / done * (self.total - done) if done else 0.0
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total}"
                         f"  ETA {_clock(eta)}  {note}\x1b[K")
        sys.stderr.flush()

    def close(self, note=""):
        if self.enabled:
            sys.stderr.write(f"\r{self.label} done in {_clock(time.perf_counter() - self.start)}  {note}\x1b[K\n")
            sys.stderr.flush()
