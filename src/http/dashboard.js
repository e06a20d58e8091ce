// dashboard.js - the dashboard's script (GET /dashboard/app.js; the page is dashboard.html,
// docs/OPERATIONS.md "Dashboard" says what it shows and where each number comes from).
//
// The key: pasted into the page, kept in this tab's sessionStorage (gone with the tab), sent as
// "Authorization: Bearer" to this server's API routes and nowhere else; never in a URL (URLs
// land in access logs) and never written to the console. The page sees what the key may see:
// an operator key every tenant, a tenant key its tenant.
//
// Live calls: GET /v1/events is read with fetch() as a stream (EventSource cannot send the
// header), parsed as Server-Sent Events, and reconnected after a loss with Last-Event-ID, so
// the server replays what was missed from its outbox. Each time the stream is (re)opened the
// page reads GET /v1/calls?status=active and takes it as the live set; ids whose call.ended was
// seen are never brought back by a listing that raced the event. Recently ended calls come from
// GET /v1/calls and then from call.ended events and End answers. Webhook deliveries are polled
// (they have no event): an operator key's are every tenant's, as its calls; a number-scoped key
// is refused them (403), and the page says so.
//
// Charts, one point a second, the last CHART_POINTS seconds, drawn on <canvas> by hand:
// active calls (the live set), ends per second (call.ended events received in that second, so
// in the key's scope), and API -> BYE latency. That one is the server's own measure,
// callplane_end_to_wire_seconds of GET /metrics (from an API end reaching the call service to
// its BYE or CANCEL handed to the SIP transport): each poll's growth of _sum over the growth of
// _count, the mean of the ends since the last poll, in ms; no point when there were none. It is
// the whole server's (every tenant's), and /metrics takes its own token (--metrics-token), not
// an API key: the page asks for it when /metrics answers 401.
//
// Every value shown is set with textContent (or an attribute): nothing from the server is ever
// parsed as HTML. Errors are shown in #error: a refused key (401) stops the page until another
// key is given; 429 waits for Retry-After; a lost network is retried with a growing pause.
"use strict";

const CHART_POINTS = 120;
const ENDED_KEEP = 50;
const DELIVERIES_EVERY_MS = 5000;
const METRICS_EVERY_MS = 2000;
const ACTIVE = new Set(["queued", "ringing", "in_progress"]);

const $ = (id) => document.getElementById(id);

const state = {
	key: sessionStorage.getItem("callplane.key") || "",
	metricsToken: sessionStorage.getItem("callplane.metricsToken") || "",
	gen: 0,                 // bumped at each connect: older loops see it and stop
	abort: null,            // the open stream's AbortController
	lastEventId: null,
	live: new Map(),        // call id -> call
	rows: new Map(),        // call id -> its <tr> in #live
	endedIds: new Set(),
	ended: [],              // newest first
	endsThisSecond: 0,
	endEvents: new Set(),   // ids whose call.ended was counted in the chart
	charts: {active: [], ends: [], latency: []},
	metricsLast: null,      // {sum, count} of the previous poll
	latencyPending: null,   // the latest poll's mean (ms), taken by the next tick
	deliveriesText: "",
};

// ------------------------------------------------------------------------------ the API

class ApiError extends Error {
	constructor(status, code, message, retryAfter) {
		super(message);
		this.status = status;       // 0: no answer (network)
		this.code = code;
		this.retryAfter = retryAfter;
	}
}

function authHeaders(extra) {
	return Object.assign({"Authorization": "Bearer " + state.key}, extra || {});
}

// The error of a refused response: {"error": {"code", "message"}} when the body has it.
async function errorOf(resp) {
	let code = "http_" + resp.status, message = resp.statusText || "request refused";
	try {
		const body = await resp.json();
		if (body && body.error) {
			code = String(body.error.code);
			message = String(body.error.message);
		}
	} catch (e) {
		// not JSON: the status says it
	}
	const ra = parseInt(resp.headers.get("Retry-After") || "", 10);
	return new ApiError(resp.status, code, message, Number.isFinite(ra) ? ra : null);
}

// method path [body] -> the parsed JSON answer; throws ApiError.
async function api(method, path, body) {
	const init = {method, headers: authHeaders(), cache: "no-store"};
	if (body !== undefined) {
		init.headers["Content-Type"] = "application/json";
		init.body = JSON.stringify(body);
	}
	let resp;
	try {
		resp = await fetch(path, init);
	} catch (e) {
		throw new ApiError(0, "network", "the server did not answer (" + e.message + ")", null);
	}
	if (!resp.ok)
		throw await errorOf(resp);
	return resp.json();
}

function describe(err) {
	if (err.status === 0)
		return "network: " + err.message;
	if (err.status === 401)
		return "401 unauthorized: the key was refused (" + err.message + "); paste a valid key";
	if (err.status === 429)
		return "429 rate limited: " + err.message +
			(err.retryAfter !== null ? " (retry after " + err.retryAfter + " s)" : "");
	return err.status + " " + err.code + ": " + err.message;
}

function showError(where, err) {
	const el = $("error");
	el.textContent = where + ": " + describe(err);
	el.hidden = false;
	el.dataset.status = String(err.status);
	if (err.status === 401)
		refuse();
}

function clearError() {
	$("error").hidden = true;
	$("error").textContent = "";
	delete $("error").dataset.status;
}

function notice(text) {
	$("notice").textContent = text;
}

function setConn(s, text) {
	document.body.dataset.conn = s;
	$("conn").textContent = text;
}

// A refused key stops everything that uses it until another key is given.
function refuse() {
	state.gen++;
	if (state.abort)
		state.abort.abort();
	setConn("refused", "key refused");
}

// ------------------------------------------------------------------------ the event stream

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Reads the SSE body, calls onMessage({id, event, data}) for each message; returns at its end.
async function readEvents(body, gen, onMessage) {
	const reader = body.getReader();
	const decoder = new TextDecoder();
	let buf = "";
	for (;;) {
		const {value, done} = await reader.read();
		if (done || gen !== state.gen)
			return;
		buf += decoder.decode(value, {stream: true}).replace(/\r\n?/g, "\n");
		let cut;
		while ((cut = buf.indexOf("\n\n")) >= 0) {
			const block = buf.slice(0, cut);
			buf = buf.slice(cut + 2);
			const msg = {id: null, event: "message", data: []};
			for (const line of block.split("\n")) {
				if (line === "" || line[0] === ":")
					continue;       // a keepalive comment
				const colon = line.indexOf(":");
				const field = colon < 0 ? line : line.slice(0, colon);
				let v = colon < 0 ? "" : line.slice(colon + 1);
				if (v[0] === " ")
					v = v.slice(1);
				if (field === "id")
					msg.id = v;
				else if (field === "event")
					msg.event = v;
				else if (field === "data")
					msg.data.push(v);
			}
			if (msg.data.length)
				onMessage(msg);
		}
	}
}

async function streamLoop(gen) {
	let pause = 1000, first = true;
	while (gen === state.gen) {
		const ctrl = new AbortController();
		state.abort = ctrl;
		setConn(first ? "connecting" : "reconnecting", first ? "connecting" : "reconnecting");
		first = false;
		try {
			const headers = authHeaders({"Accept": "text/event-stream"});
			if (state.lastEventId !== null)
				headers["Last-Event-ID"] = state.lastEventId;
			let resp;
			try {
				resp = await fetch("/v1/events", {headers, signal: ctrl.signal, cache: "no-store"});
			} catch (e) {
				throw new ApiError(0, "network", "the event stream is lost (" + e.message + ")", null);
			}
			if (!resp.ok)
				throw await errorOf(resp);
			if (gen !== state.gen)
				return;
			await loadActive(gen);
			if (gen !== state.gen)
				return;
			clearError();
			setConn("live", "live");
			pause = 1000;
			try {
				await readEvents(resp.body, gen, onMessage);
			} catch (e) {
				throw new ApiError(0, "network", "the event stream is lost (" + e.message + ")", null);
			}
			if (gen === state.gen)
				throw new ApiError(0, "network", "the server closed the event stream", null);
		} catch (err) {
			ctrl.abort();       // a stream left open would hold one of the key's --events-per-key
			if (gen !== state.gen)
				return;
			showError("live events", err);
			if (err.status === 401)
				return;
			setConn("reconnecting", "reconnecting");
			const wait = err.status === 429 && err.retryAfter !== null ? err.retryAfter * 1000 : pause;
			pause = Math.min(pause * 2, 10000);
			await sleep(wait);
		}
	}
}

function onMessage(msg) {
	if (msg.id !== null)
		state.lastEventId = msg.id;
	let ev;
	try {
		ev = JSON.parse(msg.data.join("\n"));
	} catch (e) {
		return;
	}
	const c = ev.data;
	if (!c || typeof c.id !== "string" || !ev.type || !ev.type.startsWith("call."))
		return;
	if (ev.type === "call.ended") {
		// once per call: not again for an event replayed after a reconnect
		if (!state.endEvents.has(c.id)) {
			if (state.endEvents.size >= 10000)
				state.endEvents.clear();
			state.endEvents.add(c.id);
			state.endsThisSecond++;
		}
		callEnded(c);
	} else if (ACTIVE.has(c.status) && !state.endedIds.has(c.id)) {
		state.live.set(c.id, c);
		renderLive();
	}
}

// A call seen ended (event or End answer): out of the live set, into the ended list once.
function callEnded(c) {
	state.live.delete(c.id);
	if (!state.endedIds.has(c.id)) {
		state.endedIds.add(c.id);
		state.ended.unshift(c);
		state.ended.length = Math.min(state.ended.length, ENDED_KEEP);
	}
	renderLive();
	renderEnded();
}

// The live set from GET /v1/calls?status=active (every page of it), and the ended list's start.
async function loadActive(gen) {
	const live = new Map();
	let cursor = null;
	do {
		const q = "/v1/calls?status=active&limit=200" +
			(cursor ? "&cursor=" + encodeURIComponent(cursor) : "");
		const page = await api("GET", q);
		for (const c of page.data)
			if (!state.endedIds.has(c.id))
				live.set(c.id, c);
		cursor = page.next_cursor;
	} while (cursor && gen === state.gen);
	if (gen !== state.gen)
		return;
	state.live = live;
	if (!state.ended.length) {
		const recent = await api("GET", "/v1/calls?limit=100");
		for (const c of recent.data)
			if (!ACTIVE.has(c.status) && !state.endedIds.has(c.id) &&
			    state.ended.length < ENDED_KEEP) {
				state.endedIds.add(c.id);
				state.ended.push(c);
			}
	}
	renderLive();
	renderEnded();
}

// ------------------------------------------------------------------------------ rendering

function cell(tr, text, cls) {
	const td = document.createElement("td");
	td.textContent = text === null || text === undefined ? "\u2014" : String(text);
	if (cls)
		td.className = cls;
	tr.appendChild(td);
	return td;
}

// An id (a UUID), shortened to its first 8 characters; all of it is the cell's title.
function idCell(tr, id, cls) {
	const td = cell(tr, id ? String(id).slice(0, 8) : null, "id" + (cls ? " " + cls : ""));
	if (id)
		td.title = String(id);
	return td;
}

function time(ts) {
	return ts ? String(ts).replace("T", " ").replace(/\.\d+Z$/, "Z") : null;
}

function upFor(c) {
	if (!c.answered_at)
		return null;
	const s = Math.max(0, Math.round((Date.now() - Date.parse(c.answered_at)) / 1000));
	return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

// #live: one row per call, kept and updated in place (a button is never replaced under a click).
function renderLive() {
	const tbody = $("live").tBodies[0];
	for (const [id, tr] of state.rows)
		if (!state.live.has(id)) {
			tr.remove();
			state.rows.delete(id);
		}
	const calls = [...state.live.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
	for (const c of calls) {
		let tr = state.rows.get(c.id);
		if (!tr) {
			tr = document.createElement("tr");
			tr.dataset.callId = c.id;
			idCell(tr, c.id);
			idCell(tr, c.agent_id);
			cell(tr, c.direction);
			cell(tr, c.from);
			cell(tr, c.to);
			cell(tr, c.status, "status");
			cell(tr, time(c.created_at));
			cell(tr, upFor(c), "up");
			const td = document.createElement("td");
			const b = document.createElement("button");
			b.type = "button";
			b.className = "end";
			b.textContent = "End";
			b.addEventListener("click", () => endOne(c.id, b));
			td.appendChild(b);
			tr.appendChild(td);
			state.rows.set(c.id, tr);
		}
		tr.dataset.status = c.status;
		tr.querySelector(".status").textContent = c.status;
		tr.querySelector(".up").textContent = upFor(c) || "\u2014";
		tbody.appendChild(tr);      // moves it into the sorted place
	}
	$("live-count").textContent = "(" + state.live.size + ")";
	$("active-now").textContent = String(state.live.size);
}

function renderEnded() {
	const tbody = $("ended").tBodies[0];
	const rows = state.ended.map((c) => {
		const tr = document.createElement("tr");
		tr.dataset.callId = c.id;
		tr.dataset.status = c.status;
		idCell(tr, c.id);
		idCell(tr, c.agent_id);
		cell(tr, c.to);
		cell(tr, c.status, "status");
		cell(tr, c.end_reason, "reason");
		cell(tr, c.duration_s === null ? null : c.duration_s + " s", "duration");
		cell(tr, time(c.ended_at));
		return tr;
	});
	tbody.replaceChildren(...rows);
}

// ------------------------------------------------------------------------------ ending calls

async function endOne(id, button) {
	button.disabled = true;
	try {
		const c = await api("POST", "/v1/calls/" + encodeURIComponent(id) + "/end");
		notice("ended " + c.id + ": " + c.end_reason);
		callEnded(c);
	} catch (err) {
		button.disabled = false;
		if (err.code === "call_not_active")
			notice("that call had ended already");
		else
			showError("End", err);
	}
}

async function endAll() {
	const n = state.live.size;
	if (!window.confirm("End every active call this key can see (" + n + " shown here)?")) {
		notice("End all canceled: nothing was ended");
		return;
	}
	$("end-all").disabled = true;
	notice("ending every active call...");
	try {
		const r = await api("POST", "/v1/calls/end");
		notice("End all: " + r.ended + " ended, " + r.already_ended + " already ended, " +
		       r.failed + " failed");
	} catch (err) {
		notice("");
		showError("End all", err);
	} finally {
		$("end-all").disabled = false;
	}
}

// ------------------------------------------------------------------------ webhook deliveries

async function loadDeliveries(gen) {
	let list;
	try {
		list = await api("GET", "/v1/webhooks/deliveries?limit=50");
	} catch (err) {
		if (gen !== state.gen)
			return;
		if (err.status === 403) {
			$("deliveries-note").textContent = "Webhook deliveries need a tenant or" +
				" operator key (" + err.message + ").";
			$("deliveries").tBodies[0].replaceChildren();
			state.deliveriesText = "";
		} else {
			showError("webhook deliveries", err);
		}
		return;
	}
	if (gen !== state.gen)
		return;
	$("deliveries-note").textContent = list.data.length ? "" : "none pending or failed";
	const text = JSON.stringify(list.data);
	if (text === state.deliveriesText)
		return;         // unchanged: the rows (and their buttons) stay
	state.deliveriesText = text;
	const rows = list.data.map((d) => {
		const tr = document.createElement("tr");
		tr.dataset.deliveryId = String(d.id);
		tr.dataset.status = d.status;
		cell(tr, d.id);
		cell(tr, d.event_type);
		idCell(tr, d.call_id);
		cell(tr, d.status);
		cell(tr, d.attempts);
		cell(tr, d.last_status);
		cell(tr, d.last_error === "" ? null : d.last_error);
		cell(tr, time(d.created_at));
		const td = document.createElement("td");
		if (d.status === "failed") {
			const b = document.createElement("button");
			b.type = "button";
			b.textContent = "Replay";
			b.addEventListener("click", () => replay(d.id, b));
			td.appendChild(b);
		}
		tr.appendChild(td);
		return tr;
	});
	$("deliveries").tBodies[0].replaceChildren(...rows);
}

async function replay(id, button) {
	button.disabled = true;
	try {
		await api("POST", "/v1/webhooks/deliveries/" + encodeURIComponent(id) + "/replay");
		notice("delivery " + id + " replayed: pending again");
	} catch (err) {
		showError("Replay", err);
	}
	loadDeliveries(state.gen);
}

async function replayAll() {
	try {
		const r = await api("POST", "/v1/webhooks/deliveries/replay");
		notice(r.replayed + " failed deliveries replayed");
	} catch (err) {
		showError("Replay every failed", err);
	}
	loadDeliveries(state.gen);
}

// ------------------------------------------------------------------------------ the latency

// callplane_end_to_wire_seconds_sum and _count of a /metrics text; null if absent.
function endToWire(text) {
	const sum = /^callplane_end_to_wire_seconds_sum(?:\{\})? (\S+)$/m.exec(text);
	const count = /^callplane_end_to_wire_seconds_count(?:\{\})? (\S+)$/m.exec(text);
	return sum && count ? {sum: Number(sum[1]), count: Number(count[1])} : null;
}

async function pollMetrics() {
	const headers = state.metricsToken ? {"Authorization": "Bearer " + state.metricsToken} : {};
	let resp;
	try {
		resp = await fetch("/metrics", {headers, cache: "no-store"});
	} catch (e) {
		$("latency-note").textContent = "GET /metrics: no answer";
		return;
	}
	if (resp.status === 401) {
		$("latency-note").textContent = "GET /metrics needs the server's --metrics-token:";
		$("metrics-form").hidden = false;
		state.metricsLast = null;
		return;
	}
	if (!resp.ok) {
		$("latency-note").textContent = "GET /metrics: " + resp.status;
		return;
	}
	$("metrics-form").hidden = true;
	const now = endToWire(await resp.text());
	if (!now) {
		$("latency-note").textContent = "GET /metrics has no callplane_end_to_wire_seconds";
		return;
	}
	$("latency-note").textContent = "the whole server's (every tenant's): the mean of the " +
		"API ends since the last poll (every " + METRICS_EVERY_MS / 1000 + " s); ends with " +
		"a goodbye are not counted";
	const last = state.metricsLast;
	state.metricsLast = now;
	if (last && now.count > last.count)
		state.latencyPending = (now.sum - last.sum) / (now.count - last.count) * 1000;
}

// ------------------------------------------------------------------------------ the charts

function push(series, v) {
	series.push(v);
	if (series.length > CHART_POINTS)
		series.shift();
}

// A line over the last CHART_POINTS seconds; null values are gaps. The y axis starts at 0 and
// ends at the largest value shown (at least 1), written in the corner.
function draw(canvas, series, decimals) {
	const ratio = window.devicePixelRatio || 1;
	const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
	if (canvas.width !== Math.round(w * ratio)) {
		canvas.width = Math.round(w * ratio);
		canvas.height = Math.round(h * ratio);
	}
	// what is drawn, for automation: the last value and the sum over the window
	const last = series.length ? series[series.length - 1] : null;
	canvas.dataset.last = last === null ? "" : String(last);
	canvas.dataset.total = String(series.reduce((a, v) => a + (v === null ? 0 : v), 0));
	const g = canvas.getContext("2d");
	g.setTransform(ratio, 0, 0, ratio, 0, 0);
	g.clearRect(0, 0, w, h);
	const top = Math.max(1, ...series.filter((v) => v !== null));
	const pad = 14, x = (i) => w - (series.length - 1 - i) * (w / (CHART_POINTS - 1));
	const y = (v) => h - 4 - (v / top) * (h - pad - 8);
	g.strokeStyle = "#e3e6eb";
	g.beginPath();
	g.moveTo(0, y(0));
	g.lineTo(w, y(0));
	g.stroke();
	g.fillStyle = "#5b6676";
	g.font = "11px system-ui, sans-serif";
	g.fillText(top.toFixed(decimals), 4, 11);
	g.strokeStyle = "#1f5fbf";
	g.lineWidth = 1.5;
	g.beginPath();
	let pen = false;
	series.forEach((v, i) => {
		if (v === null) {
			pen = false;
			return;
		}
		if (pen)
			g.lineTo(x(i), y(v));
		else
			g.moveTo(x(i), y(v));
		pen = true;
		if (i === 0 || series[i - 1] === null)
			g.fillRect(x(i) - 1.5, y(v) - 1.5, 3, 3);      // a lone point shows too
	});
	g.stroke();
}

function tick() {
	const c = state.charts;
	push(c.active, state.live.size);
	push(c.ends, state.endsThisSecond);
	push(c.latency, state.latencyPending);
	state.endsThisSecond = 0;
	state.latencyPending = null;
	draw($("chart-active"), c.active, 0);
	draw($("chart-ends"), c.ends, 0);
	draw($("chart-latency"), c.latency, 1);
	$("active-now").textContent = String(state.live.size);
	$("ends-now").textContent = String(c.ends[c.ends.length - 1]);
	const lat = c.latency.filter((v) => v !== null);
	$("latency-now").textContent = lat.length ? lat[lat.length - 1].toFixed(1) + " ms" : "";
	for (const [id, tr] of state.rows)
		tr.querySelector(".up").textContent = upFor(state.live.get(id)) || "\u2014";
}

// ------------------------------------------------------------------------------ start

function connect() {
	state.gen++;
	if (state.abort)
		state.abort.abort();
	clearError();
	state.lastEventId = null;
	state.live = new Map();
	state.endedIds = new Set();
	state.ended = [];
	state.deliveriesText = "";
	renderLive();
	renderEnded();
	if (!state.key) {
		setConn("idle", "not connected");
		return;
	}
	if (/[^\x21-\x7e]/.test(state.key)) {
		// fetch() refuses such a header before sending it: say why rather than "network"
		showError("API key", new ApiError(400, "invalid_key", "a key is printable ASCII " +
						  "without spaces", null));
		setConn("idle", "not connected");
		return;
	}
	const gen = state.gen;
	streamLoop(gen);
	loadDeliveries(gen);
}

document.addEventListener("DOMContentLoaded", () => {
	$("key-form").addEventListener("submit", (e) => {
		e.preventDefault();
		state.key = $("key").value.trim();
		$("key").value = "";
		if (state.key)
			sessionStorage.setItem("callplane.key", state.key);
		else
			sessionStorage.removeItem("callplane.key");
		connect();
	});
	$("forget").addEventListener("click", () => {
		sessionStorage.removeItem("callplane.key");
		state.key = "";
		connect();
	});
	$("metrics-form").addEventListener("submit", (e) => {
		e.preventDefault();
		state.metricsToken = $("metrics-token").value.trim();
		$("metrics-token").value = "";
		sessionStorage.setItem("callplane.metricsToken", state.metricsToken);
		pollMetrics();
	});
	$("end-all").addEventListener("click", endAll);
	$("deliveries-refresh").addEventListener("click", () => loadDeliveries(state.gen));
	$("replay-all").addEventListener("click", replayAll);
	setInterval(tick, 1000);
	setInterval(pollMetrics, METRICS_EVERY_MS);
	setInterval(() => {
		if (state.key && document.body.dataset.conn !== "refused" && !document.hidden)
			loadDeliveries(state.gen);
	}, DELIVERIES_EVERY_MS);
	pollMetrics();
	tick();
	connect();
});
