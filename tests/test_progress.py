"""Training progress: the recent-window rate and ETA (injected clock); the plain lines of a real run in a log file."""
import re
import subprocess
import sys

import pytest

from legion_policy.progress import ProgressMeter, format_duration


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def run_steps(meter, clock, steps, rate, start):
    """``steps`` steps at ``rate`` steps/s, one update per step; returns the step count after."""
    for i in range(1, steps + 1):
        clock.t += 1 / rate
        meter.update(start + i)
    return start + steps


def test_rate_and_eta_follow_the_steps():
    clock = Clock()
    meter = ProgressMeter(total=10_000, clock=clock)
    assert meter.rate is None and meter.eta is None and meter.speed() == "measuring the rate"
    done = run_steps(meter, clock, 60, rate=50, start=0)  # 1.2 s: more than min_span_s
    assert meter.rate == pytest.approx(50)
    etas = []
    for _ in range(3):
        done = run_steps(meter, clock, 500, rate=50, start=done)
        assert meter.rate == pytest.approx(50)
        assert meter.eta == pytest.approx((10_000 - done) / meter.rate)  # remaining / rate
        etas.append(meter.eta)
    assert etas[0] > etas[1] > etas[2]  # not stuck
    assert meter.speed() == f"50.0 env-steps/s, ETA {format_duration((10_000 - done) / 50)}"


def test_rate_is_of_the_recent_window_and_restart_forgets_the_random_phase():
    clock = Clock()
    meter = ProgressMeter(total=100_000, window_s=60, clock=clock)
    done = run_steps(meter, clock, 1000, rate=1000, start=0)  # random actions: fast
    done = run_steps(meter, clock, 100, rate=50, start=done)  # 2 s of SAC
    assert meter.rate > 5 * 50  # a window mostly of the random phase...
    meter.restart(done)  # ...which the trainer forgets when the SAC updates start
    assert meter.rate is None
    done = run_steps(meter, clock, 100, rate=50, start=done)
    assert meter.rate == pytest.approx(50)
    done = run_steps(meter, clock, 6000, rate=50, start=done)
    done = run_steps(meter, clock, 20 * 60, rate=20, start=done)  # slows down: 60 s at 20 steps/s
    assert meter.rate == pytest.approx(20, rel=0.02)  # the last minute only, not the average since the start
    assert meter.eta == pytest.approx((100_000 - done) / meter.rate)


def test_paused_time_is_left_out_of_the_rate_and_counted_in_the_eta():
    clock = Clock()
    meter = ProgressMeter(total=10_000, window_s=1000, clock=clock)
    done = run_steps(meter, clock, 500, rate=10, start=0)  # 50 s of training
    with meter.paused():  # a 25 s evaluation
        clock.t += 25
    done = run_steps(meter, clock, 500, rate=10, start=done)  # 50 s more
    assert meter.rate == pytest.approx(10)  # not 1000 steps / 125 s
    assert meter.eta == pytest.approx((10_000 - done) / 10 * 125 / 100)  # evaluations take a fifth of the wall time


def test_plain_lines_every_minute_or_five_percent():
    clock = Clock()
    meter = ProgressMeter(total=100_000, line_every_s=60, line_every_pct=5, clock=clock)
    assert not meter.line_due()
    done = run_steps(meter, clock, 4999, rate=1000, start=0)
    assert not meter.line_due()
    done = run_steps(meter, clock, 1, rate=1000, start=done)
    assert meter.line_due() and not meter.line_due()  # 5 % crossed, once
    clock.t += 60
    assert meter.line_due()  # a minute passed
    meter.restart(12_000)
    done = run_steps(meter, clock, 120, rate=60, start=12_000)
    line = meter.line("visit 2/10 push-v3")
    assert line == (f"visit 2/10 push-v3: step 12,120/100,000 (12.1 %), 60.0 env-steps/s, "
                    f"ETA {format_duration(87_880 / 60)}")
    assert format_duration(87_880 / 60) == "0:24:25"


def test_training_to_a_log_file_prints_progress_lines(tmp_path):
    """A real `legion train` with stdout to a file (not a terminal): periodic lines with a rate and a moving ETA."""
    log = tmp_path / "train.log"
    args = [sys.executable, "-m", "legion_runtime.cli", "train", "--recipe", "paper", "--tasks", "reach-v3", "--method", "finetune",
            "--steps-per-task", "1000", "--random-steps", "100", "--eval-every", "1000", "--eval-episodes", "1",
            "--hidden", "32", "--batch-size", "32", "--seed", "3", "--out", str(tmp_path / "run")]
    with open(log, "w") as f:
        subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, check=True, timeout=600)
    text = log.read_text()
    lines = re.findall(r"visit 1/1 reach-v3: step ([\d,]+)/1,000 \(([\d.]+) %\), (.*)", text)
    assert len(lines) >= 10, text  # every 5 % of the run at least
    steps = [int(s.replace(",", "")) for s, _, _ in lines]
    assert steps == sorted(steps) and steps[-1] == 1000
    rated = [(step, re.fullmatch(r"([\d.]+) env-steps/s, ETA (\d+):(\d\d):(\d\d)", speed))
             for step, (_, _, speed) in zip(steps, lines)]
    assert all(m is None for step, m in rated if step <= 100), "no rate from the random-action phase"
    rated = [(step, float(m[1]), 3600 * int(m[2]) + 60 * int(m[3]) + int(m[4])) for step, m in rated if m]
    assert len(rated) >= 3, text
    assert all(rate > 0 for _, rate, _ in rated)
    etas = [eta for _, _, eta in rated]
    assert etas[-1] == 0 and etas[0] > 0 and len(set(etas)) > 1, text  # the ETA moves
