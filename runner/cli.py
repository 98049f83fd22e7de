"""The `pacsmig` command line: parse, call the command (runner.commands), exit with its code.

Exit codes: 0 success; 1 the work ran but something is not right (or a peer is down);
2 bad input, one `PATH:LINE:COLUMN: message` line per problem on stderr.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from runner.errors import DicomError, InputError, LedgerError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Declarative PACS data migration runner.")

ProfileArg = Annotated[Path, typer.Argument(help="site profile (YAML)", metavar="PROFILE")]


def _fail(code: int, lines: list[str]) -> NoReturn:
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(code)


@contextmanager
def _exit_codes() -> Iterator[None]:
    """Turn the runner's errors into messages and exit codes (never a traceback)."""
    try:
        yield
    except InputError as exc:
        _fail(2, [str(p) for p in exc.problems])
    except (DicomError, LedgerError) as exc:
        _fail(1, [f"error: {exc}"])
    except KeyboardInterrupt:
        _fail(130, ["interrupted"])


@app.command()
def validate(profiles: Annotated[list[Path], typer.Argument(metavar="PROFILE...")]) -> None:
    """Check profiles completely (every problem at once); no network."""
    from runner.commands.validate import validate as command

    _done(command(profiles, typer.echo, _err))


@app.command()
def schema() -> None:
    """Print the JSON Schema of the site profile."""
    from runner.commands.validate import schema as command

    _done(command(typer.echo))


@app.command()
def plan(
    profile: ProfileArg,
    inventory: Annotated[Path | None, typer.Option(help="inventory CSV instead of C-FIND")] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="write the plan as JSON")] = None,
    forecast: Annotated[bool, typer.Option("--forecast", help="add duration and total-work "
                                           "estimates per strategy")] = False,
) -> None:
    """Dry run: inventory, order the work and explain it; no C-MOVE, no C-STORE."""
    from runner.commands.plan import plan as command

    with _exit_codes():
        _done(command(profile, inventory, json_file, typer.echo, forecast))


@app.command()
def check(profile: ProfileArg) -> None:
    """Pre-flight against the real peers: echo, query and a one-instance move at each source
    device, a store and query at the destination; each failure with its likely cause."""
    from runner.commands.check import check as command

    with _exit_codes():
        _done(command(profile, typer.echo, _err))


@app.command("morph-preview")
def morph_preview(
    profile: ProfileArg,
    sample: Annotated[int, typer.Option(min=1, max=10000, help="instances to try the rules "
                                        "on")] = 50,
    inventory: Annotated[Path | None, typer.Option(help="inventory CSV instead of C-FIND "
                                                   "(the headers still come from the "
                                                   "source)")] = None,
    show_identifiers: Annotated[bool, typer.Option(
        "--show-identifiers", help="show patient names, IDs and accession numbers in clear "
                                   "(a local preview; masked by default)")] = False,
) -> None:
    """Try the morphing rules on real headers from the source (C-FIND only, nothing moved)."""
    from runner.commands.morph_preview import morph_preview as command

    with _exit_codes():
        _done(command(profile, sample, inventory, show_identifiers, typer.echo))


@app.command()
def run(
    profile: ProfileArg,
    limit: Annotated[int | None, typer.Option(min=1, help="pilot batch: only the first N "
                                              "studies not yet verified")] = None,
    inventory: Annotated[Path | None, typer.Option(help="inventory CSV instead of C-FIND")] = None,
) -> None:
    """Migrate, with live progress; safe to interrupt and run again (resumes from the ledger)."""
    from runner.commands.run import run as command

    with _exit_codes():
        _done(command(profile, limit, inventory, _progress_writer(), sys.stdout.isatty(), _err))


@app.command()
def sync(
    profile: ProfileArg,
    since: Annotated[datetime | None, typer.Option(
        "--since", formats=["%Y-%m-%d"], help="census of studies dated from DATE only (no "
        "sweep: studies added with older dates are found by a full sync)")] = None,
) -> None:
    """Catch-up until cutover: census again, migrate what is new or changed; safe to repeat."""
    from runner.commands.sync import sync as command

    with _exit_codes():
        _done(command(profile, since.date() if since else None, _progress_writer(),
                      sys.stdout.isatty()))


@app.command()
def status(profile: ProfileArg) -> None:
    """Where the migration stands, from the ledger."""
    from runner.commands.status import status as command

    with _exit_codes():
        _done(command(profile, typer.echo))


@app.command()
def report(
    profile: ProfileArg,
    date_from: Annotated[datetime | None, typer.Option(
        "--from", formats=["%Y-%m-%d"], help="interim report: studies dated from DATE")] = None,
    date_to: Annotated[datetime | None, typer.Option(
        "--to", formats=["%Y-%m-%d"], help="interim report: studies dated up to DATE")] = None,
    phase: Annotated[int | None, typer.Option(
        min=1, help="interim report: only phase N (counted from 1)")] = None,
) -> None:
    """Reconciliation CSV/Parquet and the sign-off report; exit 1 if a study is not verified."""
    from runner.commands.report import report as command

    with _exit_codes():
        _done(command(profile, date_from.date() if date_from else None,
                      date_to.date() if date_to else None, phase, typer.echo))


@app.command()
def demo(studies: Annotated[int, typer.Option(min=12, max=2000, help="studies in the "
                                              "simulated PACS")] = 60,
         reports: Annotated[Path | None, typer.Option(
             help="write the demo's ledger, reports, spool and archive under DIR/demo "
                  "instead of the checkout's reports/demo")] = None,
         compare: Annotated[bool, typer.Option(
             help="migrate twice, with the profile's delay formula and with the hourly "
                  "break, and show each run's dead time, lock-ups and duration next to its "
                  "forecast (under DIR/demo-compare)")] = False) -> None:
    """The whole job on an embedded default: simulated PACS and archive on loopback."""
    from runner.commands.demo import demo as command
    from runner.commands.demo_compare import compare as compare_command

    run = compare_command if compare else command
    with _exit_codes():
        _done(run(studies, reports, _progress_writer(), sys.stdout.isatty()))


@app.command()
def verify(
    profile: ProfileArg,
    rebuild: Annotated[bool, typer.Option(
        "--rebuild", help="after a lost ledger: record what the destination already holds "
                          "of the plan, so that the next run sends only the rest")] = False,
    inventory: Annotated[Path | None, typer.Option(help="with --rebuild: inventory CSV "
                                                   "instead of C-FIND")] = None,
) -> None:
    """Check the destination again for every study sent; queue what is missing."""
    from runner.commands.verify import verify as command

    with _exit_codes():
        _done(command(profile, rebuild, inventory, typer.echo))


def _patient_id(value: str) -> str:
    from runner.execute.priority.finder import has_wildcards

    if not value.strip() or has_wildcards(value):
        raise typer.BadParameter("give one patient ID, without wildcard characters (* ? \\)")
    return value.strip()


@app.command()
def priority(
    profile: ProfileArg,
    patient: Annotated[str, typer.Option(help="the patient's ID (as the new PACS or the RIS "
                                         "knows it: the rules' lookup maps it back)",
                                         callback=_patient_id)],
    due: Annotated[datetime | None, typer.Option(
        formats=["%Y-%m-%d"], help="when the priors are needed (the earliest due go first)")]
    = None,
    modality: Annotated[str, typer.Option(help="the order's modality (priority.rules."
                                          "same_modality)")] = "",
    body_part: Annotated[str, typer.Option(help="the order's body part (priority.rules."
                                           "same_body_part)")] = "",
    issuer: Annotated[str, typer.Option(help="the patient ID's issuer")] = "",
) -> None:
    """Ask for a patient's priors first: kept in the priority inbox, served by `pacsmig run`."""
    from runner.commands.priority import priority as command

    with _exit_codes():
        _done(command(profile, patient, due.date() if due else None, modality, issuer,
                      body_part, typer.echo))


@app.command()
def listen(profile: ProfileArg) -> None:
    """Between runs: receive HL7 orders (priority.hl7) into the priority inbox; Ctrl-C stops."""
    from runner.commands.priority import listen as command

    with _exit_codes():
        _done(command(profile, typer.echo))


def _err(line: str) -> None:
    typer.echo(line, err=True)


def _done(code: int) -> None:
    """End the command with its exit code (nothing to do for 0)."""
    if code:
        raise typer.Exit(code)


def _progress_writer() -> Callable[[str], None]:
    tty = sys.stdout.isatty()

    def write(text: str) -> None:
        if tty and text.startswith("\r"):
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            typer.echo(text.lstrip("\r"))

    return write


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:
        sys.stderr.close()
    except SystemExit as done:  # how typer ends every command
        _exit_now(done)


def _exit_now(done: SystemExit) -> None:
    """End the process at once with `done`'s exit code, skipping the interpreter's teardown
    (which frees every object one by one: 60 ms after a 1,200-instance run, seconds after
    a plan of a million studies). Every command has closed its ledger and files by then;
    output is flushed here. While another thread still runs, the normal exit waits for it.
    """
    if threading.active_count() > 1:
        raise done
    code = done.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)  # as SystemExit("message") would
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a closed pipe or stream: nothing more to say
            stream.flush()
    os._exit(code or 0)
