"""`cellctl`: the user and operator CLI over the client SDK (cellapi.client).

This module holds the global options and the instance commands; operator commands live in
cellapi.cli.admin, running a command (client, output, errors, exit codes) in cellapi.cli.session, the
rendering in cellapi.cli.render*.
Each command is a short coroutine over a Session: call the SDK, show the reply, return an exit code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cellapi.cli.admin import ADMIN_COMMANDS
from cellapi.cli.config import CA_ENV, CERT_ENV, KEY_ENV, OUTPUTS, ROUTERS_ENV, TOKEN_ENV, RawOptions
from cellapi.cli.errors import EXIT_CODES_HELP
from cellapi.cli.render import (
    instance_detail,
    instances_table,
    merge_pages,
    networks_table,
    unreachable_warning,
    whoami_table,
)
from cellapi.cli.requests import create_request, near_from, near_options, new_request_id
from cellapi.cli.session import Session, run
from cellapi.cli.wait import follow, wait_active


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES_HELP)
@click.version_option(package_name="cellfed")
@click.option(
    "--router",
    "routers",
    multiple=True,
    metavar="HOST:PORT",
    help=f"A router to talk to; repeat for several (the nearest answering one is used). "
    f"Default: ${ROUTERS_ENV}, comma-separated.",
)
@click.option("--token", help=f"Bearer token. Default: ${TOKEN_ENV}.")
@click.option(
    "--token-file", type=click.Path(dir_okay=False, path_type=Path), help="Read the token from a file."
)
@click.option(
    "--output",
    "-o",
    type=click.Choice(OUTPUTS),
    default="table",
    show_default=True,
    help="table for people; json (proto3 JSON of the API reply) for scripts.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=10.0,
    show_default=True,
    help="Deadline of each call, in seconds.",
)
@click.option(
    "--ca",
    "ca_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Talk TLS to the routers, trusting this CA file (the federation's ca.crt). Default: ${CA_ENV}.",
)
@click.option(
    "--cert",
    "cert_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"An operator's certificate chain, for a router's admin port. Default: ${CERT_ENV}.",
)
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"The private key of --cert. Default: ${KEY_ENV}.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    routers: tuple[str, ...],
    token: str | None,
    token_file: Path | None,
    output: str,
    timeout_s: float,
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
) -> None:
    """cellctl: create, inspect and manage instances across the federation, and see it as an operator."""
    ctx.obj = RawOptions(routers, token, token_file, output, timeout_s, ca_file, cert_file, key_file)


@cli.command()
@click.argument("name")
@click.option("--flavor", required=True, help="A named flavor, e.g. m1.small.")
@click.option("--image", required=True, help="An image name, e.g. debian-12.")
@click.option("--user-data-file", type=click.File("rb"), help="Given to the guest at first boot (<= 64 KiB).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="A label; repeat for several.")
@click.option(
    "--network", "networks", multiple=True, metavar="NAME",
    help="A provider network to attach (one NIC each, in order); repeat for several. Default: the cell's.",
)  # fmt: skip
@near_options
@click.option("--request-id", help="Idempotency key; reuse it to retry safely. Default: a fresh one.")
@click.option("--wait", is_flag=True, help="Wait until the instance is ACTIVE (exit 6 if it ends in ERROR).")
@click.option("--wait-timeout", type=float, default=300.0, show_default=True, help="Seconds --wait waits.")
@click.pass_obj
def create(
    raw: RawOptions,
    /,
    name: str,
    flavor: str,
    image: str,
    user_data_file: Any,
    labels: tuple[str, ...],
    networks: tuple[str, ...],
    request_id: str | None,
    wait: bool,
    wait_timeout: float,
    **near_kw: Any,
) -> None:
    """Create instance NAME in the nearest healthy cell with room (or as --near-* says)."""
    rid = request_id or new_request_id()
    request = create_request(
        name,
        flavor,
        image,
        request_id=rid,
        labels=labels,
        near=near_from(near_kw),
        user_data=user_data_file.read() if user_data_file else b"",
        networks=networks,
    )

    async def go(s: Session) -> int:
        # Said before the call, so the id is known even if the call fails and must be retried.
        s.note(f"request id: {rid} (to retry safely: --request-id {rid})")
        inst = await s.client.create(request)
        code = 0
        if wait:
            code, inst = await wait_active(s, inst, wait_timeout)
        s.show(inst, lambda: instance_detail(inst, s.now_ms()))
        return code

    run(raw, go)


@cli.command()
@click.argument("instance_id")
@click.pass_obj
def get(raw: RawOptions, instance_id: str) -> None:
    """Show one instance (from the index, marked stale, if its cell does not answer)."""

    async def go(s: Session) -> int:
        inst = await s.client.get(instance_id)
        s.show(inst, lambda: instance_detail(inst, s.now_ms()))
        return 0

    run(raw, go)


@cli.command(name="list")
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="EXPR",
    help="status=ACTIVE, site=par1, cell=par1-c1, name:web-* or address=203.0.113.10; repeat to AND them.",
)
@click.option("--order-by", default="", help='create_time (default), "create_time desc" or display_name.')
@click.option("--page-size", type=click.IntRange(1, 500), help="Entries per page (router default 50).")
@click.option("--page-token", default="", help="Continue from a previous page.")
@click.option("--all", "all_pages", is_flag=True, help="Fetch every page.")
@click.pass_obj
def list_command(
    raw: RawOptions,
    filters: tuple[str, ...],
    order_by: str,
    page_size: int | None,
    page_token: str,
    all_pages: bool,
) -> None:
    """List your instances; cells that do not answer in time are named and their rows marked stale."""
    query = {"filter": " AND ".join(filters), "order_by": order_by, "page_size": page_size or 0}

    async def go(s: Session) -> int:
        pages = [await s.client.list(page_token=page_token, **query)]
        while all_pages and pages[-1].next_page_token:
            pages.append(await s.client.list(page_token=pages[-1].next_page_token, **query))
        reply = merge_pages(pages) if all_pages else pages[0]
        s.note(unreachable_warning(reply.unreachable_cells))
        s.show(reply, lambda: instances_table(reply.instances, s.now_ms()))
        if reply.next_page_token and not s.config.json:
            s.note(f"more: --page-token {reply.next_page_token} (or --all)")
        return 0

    run(raw, go)


def _action(verb: str, doc: str) -> click.Command:
    @click.command(name=verb.lower(), help=doc)
    @click.argument("instance_id")
    @click.pass_obj
    def command(raw: RawOptions, instance_id: str) -> None:
        async def go(s: Session) -> int:
            inst = await s.client.action(verb, instance_id)
            s.show(inst, lambda: instances_table([inst], s.now_ms()))
            return 0

        run(raw, go)

    return command


for _verb, _doc in (
    ("Delete", "Delete an instance (it shows DELETING, then DELETED)."),
    ("Start", "Start a STOPPED instance."),
    ("Stop", "Stop an ACTIVE instance."),
    ("Reboot", "Reboot an ACTIVE instance."),
):
    cli.add_command(_action(_verb, _doc))


@cli.command()
@click.argument("instance_id")
@click.pass_obj
def watch(raw: RawOptions, instance_id: str) -> None:
    """Print the instance's state changes until it is DELETED (or Ctrl-C)."""
    run(raw, lambda s: follow(s, instance_id))


@cli.command()
@click.pass_obj
def whoami(raw: RawOptions) -> None:
    """Who the router says you are (tenant, roles) and which router answered."""

    async def go(s: Session) -> int:
        me = await s.client.whoami()
        s.show(me, lambda: whoami_table(me))
        return 0

    run(raw, go)


@cli.group()
def network() -> None:
    """The provider networks creates can name (`create --network NAME`)."""


@network.command(name="list")
@click.pass_obj
def network_list(raw: RawOptions) -> None:
    """Every network some cell declares, the sites that have it, and where it is the default."""

    async def go(s: Session) -> int:
        found = await s.client.networks()
        s.show(found, lambda: networks_table(found))
        return 0

    run(raw, go)


for _command in ADMIN_COMMANDS:
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="cellctl")


if __name__ == "__main__":
    main()
