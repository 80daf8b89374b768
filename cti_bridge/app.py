"""Wires the daemon: store, outputs, transcription, call pipeline, AMI clients.

Start in that order, stop in reverse: the PBXs go quiet first, the pipeline drains
what they sent, recordings and transcriptions stop, then the publisher flushes
and marks the bridge offline, and the store closes last.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from types import TracebackType

import structlog

from cti_bridge.ami.client import AmiClient
from cti_bridge.ami.originate import AmiDialer
from cti_bridge.callback_queue import CallbackQueue
from cti_bridge.calls.agents import AgentDirectory, AgentEntry
from cti_bridge.calls.presence import AgentPresence
from cti_bridge.calls.tracker import CallTracker, PbxRouting
from cti_bridge.calls.user_events import FieldMapping, IvrMapping, SurveyMapping, UserEventRules
from cti_bridge.click_to_dial import ClickToDial
from cti_bridge.config import Config, reveal
from cti_bridge.crm.recognition import CallerRecognition
from cti_bridge.crm.service import CrmService, crm_headers
from cti_bridge.notifier import Notifier
from cti_bridge.pipeline import CallPipeline
from cti_bridge.recordings import RecordingService
from cti_bridge.screenpop.mqtt import MqttPublisher
from cti_bridge.screenpop.outputs import Fanout, Publisher
from cti_bridge.sla_scheduler import SlaScheduler
from cti_bridge.store import Database, Store
from cti_bridge.store.database import sqlite_path
from cti_bridge.tickets.dispatch import CallbackPolicy
from cti_bridge.tickets.model import TicketNumbering
from cti_bridge.tickets.service import TicketService
from cti_bridge.tickets.workflow import Workflow
from cti_bridge.transcribe.pool import WorkerPool
from cti_bridge.transcribe.service import TranscriptionService, model_path
from cti_bridge.web.app import create_app
from cti_bridge.web.auth import Teams
from cti_bridge.web.context import Health, WebContext
from cti_bridge.web.live import LiveHub
from cti_bridge.web.server import WebServer

log = structlog.get_logger(__name__)

_FLUSH_SECONDS = 5.0


def build_tracker(config: Config) -> CallTracker:
    routing = {
        pbx.name: PbxRouting(
            frozenset(pbx.inbound_contexts),
            frozenset(pbx.outbound_contexts),
            frozenset(pbx.inbound_dids),
            frozenset(pbx.ivr_variables),
            pbx.ticket_variable,
        )
        for pbx in config.pbxs
    }
    return CallTracker(routing, agent_directory(config), user_event_rules(config))


def click_to_dial(config: Config) -> ClickToDial | None:
    """Click-to-dial on the PBXs that have an `originate` account; None when none has."""
    dialers = {
        pbx.name: AmiDialer(pbx, pbx.originate, reveal(pbx.originate.secret))
        for pbx in config.pbxs
        if pbx.originate is not None
    }
    return ClickToDial(config, dialers) if dialers else None


def agent_directory(config: Config) -> AgentDirectory:
    return AgentDirectory(AgentEntry(a.id, tuple(a.interfaces), a.extension, a.pbx) for a in config.agents)


def user_event_rules(config: Config) -> UserEventRules:
    """The site's UserEvent conventions (`user_events:`) for the tracker and the pipeline."""
    events = config.user_events
    return UserEventRules(
        surveys=[SurveyMapping(event=m.event, score=m.score, call=m.call) for m in events.survey],
        ivrs=[
            IvrMapping(event=m.event, choice=m.choice, menu=m.menu, menu_name=m.menu_name) for m in events.ivr
        ],
        fields=[FieldMapping(event=m.event, fields=dict(m.fields)) for m in events.fields],
    )


def attachments_folder(config: Config) -> Path:
    """Where attached files are kept: `store.attachments`, else beside the database."""
    return config.store.attachments or sqlite_path(config.store.url).parent / "attachments"


def numbering(config: Config) -> TicketNumbering:
    return TicketNumbering(config.tickets.number_prefix, config.tickets.number_width)


class Daemon:
    """The running bridge. `async with Daemon(config) as daemon:` runs it until the block ends."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store: Store | None = None
        self.publisher: MqttPublisher | None = None
        self.pipeline: CallPipeline | None = None
        self.pool: WorkerPool | None = None
        self.transcription: TranscriptionService | None = None
        self.recordings: RecordingService | None = None
        self.sla: SlaScheduler | None = None
        self.notifier: Notifier | None = None
        self.callback_queue: CallbackQueue | None = None
        self.crm: CrmService | None = None
        self.recognition: CallerRecognition | None = None
        self.ami: list[AmiClient] = []
        self.live = LiveHub()
        self.web: WebServer | None = None
        self._main: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._stop = asyncio.Event()

    async def __aenter__(self) -> Daemon:
        self._main = asyncio.create_task(self._run(), name="cti-bridge")
        started = asyncio.create_task(self._started.wait(), name="cti-bridge-started")
        done, _ = await asyncio.wait({self._main, started}, return_when=asyncio.FIRST_COMPLETED)
        if self._main in done:
            started.cancel()
            self._main.result()  # raises what stopped start-up
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        self._stop.set()
        if self._main is not None:
            await self._main

    async def wait(self) -> None:
        """Run until stopped (or until a component fails, which raises here).

        Cancelling the waiter leaves the daemon running: `stop()` still drains it in order.
        """
        assert self._main is not None
        await asyncio.shield(self._main)

    @property
    def web_url(self) -> str | None:
        return self.web.url if self.web is not None else None

    def _web_server(self, store: Store, publisher: Publisher, workflow: Workflow) -> WebServer:
        config = self.config
        mqtt = self.publisher
        context = WebContext(
            config=config,
            store=store,
            hub=self.live,
            publisher=publisher,
            workflow=workflow,
            teams=Teams.from_config(config),
            attachments_folder=attachments_folder(config),
            health=Health(
                mqtt_connected=lambda: mqtt is not None and mqtt.connected.is_set(),
                pbx_connected=lambda: {c.name: c.connected.is_set() for c in self.ami},
                live_calls=lambda: self.pipeline.live_calls if self.pipeline else (),
                agent_states=lambda: self.pipeline.presence.states() if self.pipeline else (),
            ),
            dialer=click_to_dial(config),
        )
        return WebServer(create_app(context), config.web)

    async def _run(self) -> None:
        config = self.config
        async with contextlib.AsyncExitStack() as stack:
            store = self.store = await Store.open(config.store.url, numbering(config))
            stack.push_async_callback(store.close)
            mqtt_password = reveal(config.mqtt.password) if config.mqtt.password else None
            mqtt = self.publisher = MqttPublisher(config.mqtt, mqtt_password)
            # Every message goes to MQTT and to the browser pages that may see it.
            publisher = Fanout(mqtt, self.live)
            transcription = config.transcription
            workflow = Workflow.from_config(config)  # the rules' edits and the pages' go through it
            if transcription.enabled and transcription.workers > 0:
                preload = sorted({str(model_path(m)) for m in transcription.models.values()})
                self.pool = await stack.enter_async_context(
                    WorkerPool(transcription.workers, preload=preload)
                )
                self.transcription = TranscriptionService(
                    store,
                    self.pool,
                    transcription,
                    publisher,
                    rules=config.tickets.rules,
                    workflow=workflow,
                )
            jobs_queued = self.transcription.jobs_queued if self.transcription else (lambda: None)
            self.recordings = RecordingService(store, config.pbxs, transcription, publisher, jobs_queued)
            tickets = TicketService(store, config.tickets, config.phone.default_region)
            # Their own connection: a pass over the open tickets never queues the call path's
            # transactions behind it on the store's one database thread.
            sla_db = await Database.open(config.store.url)
            stack.push_async_callback(sla_db.close)
            self.notifier = Notifier(sla_db, publisher, connected=mqtt.connected)
            callbacks = CallbackPolicy.from_config(config)
            if config.crm is not None and config.crm.enabled:
                # Its HTTP client closes with the stack, after the lookups' tasks have stopped.
                self.crm = await stack.enter_async_context(CrmService(config.crm, crm_headers(config.crm)))
                self.recognition = CallerRecognition(self.crm, store, publisher)
            self.pipeline = CallPipeline(
                build_tracker(config),
                tickets,
                store,
                self.recordings,
                publisher,
                callbacks=callbacks,
                notifications_queued=self.notifier.wake,
                user_events=user_event_rules(config),
                workflow=workflow,
                reassign_on_transfer=config.tickets.on_transfer == "reassign",
                presence=AgentPresence(agent_directory(config)),
                recognition=self.recognition,
                backlog_limit=config.store.backlog_limit,
            )
            self.callback_queue = CallbackQueue(
                store,
                callbacks,
                publisher,
                urgent_queues=tuple(config.dispatch.urgent_queues),
                every=config.dispatch.requeue_every.total_seconds(),
                notifications_queued=self.notifier.wake,
                away=self.pipeline.agents_away,
            )
            self.ami = [AmiClient(pbx, reveal(pbx.secret), self.pipeline.submit) for pbx in config.pbxs]
            self.sla = SlaScheduler.from_config(
                config, sla_db, publisher, notifications_queued=self.notifier.wake
            )
            if config.web.enabled:
                self.web = self._web_server(store, publisher, workflow)
            async with asyncio.TaskGroup() as tasks:
                publishing = tasks.create_task(mqtt.run(), name="mqtt-publisher")
                side_tasks = []
                web_task = tasks.create_task(self.web.run(), name="web") if self.web else None
                if self.transcription is not None:
                    side_tasks.append(tasks.create_task(self.transcription.run(), name="transcription"))
                side_tasks.append(tasks.create_task(self.recordings.run(), name="recordings"))
                side_tasks.append(tasks.create_task(self.sla.run(), name="sla-scheduler"))
                side_tasks.append(tasks.create_task(self.notifier.run(), name="notifier"))
                side_tasks.append(tasks.create_task(self.callback_queue.run(), name="callback-queue"))
                if self.crm is not None and self.recognition is not None:
                    side_tasks.append(tasks.create_task(self.crm.run(), name="crm"))
                    side_tasks.append(tasks.create_task(self.recognition.run(), name="caller-recognition"))
                pipeline_task = tasks.create_task(self.pipeline.run(), name="call-pipeline")
                ami_tasks = [
                    tasks.create_task(client.run(), name=f"ami-{client.name}") for client in self.ami
                ]
                log.info(
                    "daemon.started",
                    pbxs=[p.name for p in config.pbxs],
                    workers=transcription.workers if self.transcription else 0,
                )
                self._started.set()
                await self._stop.wait()
                log.info("daemon.stopping")
                if self.web is not None and web_task is not None:
                    # Pages first: their streams end, and no request changes a ticket while
                    # the rest stops.
                    self.live.close()
                    self.web.stop()
                    await web_task
                for task in ami_tasks:
                    task.cancel()
                for client in self.ami:
                    await client.close()
                await self.pipeline.stop_tracking()  # bounded only while the store refuses writes
                pipeline_task.cancel()
                for task in side_tasks:
                    task.cancel()
                mqtt.stop()
                try:  # a broker that is away must not hold the stop up for long
                    await asyncio.wait_for(asyncio.shield(publishing), _FLUSH_SECONDS)
                except TimeoutError:
                    log.warning("daemon.mqtt_flush_timeout", pending=mqtt.pending)
                    publishing.cancel()
        log.info("daemon.stopped")
