// driver.mjs - headless Chromium for tests/blackbox/test_webcall.py and test_dashboard.py,
// driven over stdio.
//
// The test sends one JSON command a line on stdin; each gets one JSON answer a line on stdout,
// {"ok": true, ...} or {"ok": false, "error": "..."}, in order. Chromium is Debian's
// (/usr/bin/chromium, or CHROMIUM), started by playwright-core, which downloads nothing. Its
// microphone is a fake device fed from a WAV file (looped) when launch names one, and
// permission prompts are answered yes; --no-sandbox because the tests run as root in a
// container. A page's dialogs (confirm, alert) are answered as its last "dialogs" command says
// (dismissed until then) and listed in its answer.
//
//   {"cmd": "launch", "wav": PATH}              start the browser (wav: optional)
//   {"cmd": "open", "url": URL}                 a new page at URL -> {"page": N}
//   {"cmd": "wait_state", "page": N, "state": S, "timeout_ms": T}
//                                               until <body data-call-state> is S
//   {"cmd": "stats", "page": N}                 window.callplane.stats
//   {"cmd": "recent", "page": N}                the last 2 s the page received (floats)
//   {"cmd": "screenshot", "page": N, "path": P, "full": B}
//                                               a PNG of the page (full: all of it, not the view)
//   {"cmd": "close", "page": N}                 closes the page (the tab)
//   {"cmd": "fill", "page": N, "selector": S, "text": T}  types T into the field S
//   {"cmd": "click", "page": N, "selector": S}  clicks S (waits until it can)
//   {"cmd": "wait", "page": N, "selector": S, "state": "attached"|"detached", "timeout_ms": T}
//   {"cmd": "texts", "page": N, "selector": S}  the textContent of each element S -> {"texts"}
//   {"cmd": "dialogs", "page": N, "answer": "accept"|"dismiss"}
//                                               how the next dialogs are answered -> {"seen"}:
//                                               the messages of those answered so far
//   {"cmd": "quit"}                             closes the browser and exits
import { chromium } from "playwright-core";
import readline from "node:readline";

let browser = null;
const pages = new Map();
const dialogs = new Map();     // page number -> {answer, seen}
let nextPage = 1;

function page(n) {
  const p = pages.get(n);
  if (!p)
    throw new Error("no page " + n);
  return p;
}

const commands = {
  async launch(c) {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      headless: true,
      args: [
        "--no-sandbox",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        ...(c.wav ? ["--use-file-for-fake-audio-capture=" + c.wav] : []),
        "--autoplay-policy=no-user-gesture-required",
      ],
    });
    return { version: browser.version() };
  },
  async open(c) {
    const p = await browser.newPage();
    const n = nextPage++;
    pages.set(n, p);
    p.on("console", (m) => process.stderr.write("page " + n + ": " + m.text() + "\n"));
    const d = { answer: "dismiss", seen: [] };
    dialogs.set(n, d);
    p.on("dialog", (dialog) => {
      d.seen.push(dialog.message());
      (d.answer === "accept" ? dialog.accept() : dialog.dismiss()).catch(() => {});
    });
    const resp = await p.goto(c.url);
    return { page: n, status: resp ? resp.status() : null };
  },
  async wait_state(c) {
    await page(c.page).waitForSelector('body[data-call-state="' + c.state + '"]',
                                       { timeout: c.timeout_ms || 10000, state: "attached" });
    return {};
  },
  async stats(c) {
    return { stats: await page(c.page).evaluate(() => window.callplane.stats) };
  },
  async recent(c) {
    return { samples: await page(c.page).evaluate(() => window.callplane.recent()) };
  },
  async screenshot(c) {
    await page(c.page).screenshot({ path: c.path, fullPage: !!c.full });
    return {};
  },
  async fill(c) {
    await page(c.page).fill(c.selector, c.text, { timeout: c.timeout_ms || 10000 });
    return {};
  },
  async click(c) {
    await page(c.page).click(c.selector, { timeout: c.timeout_ms || 10000 });
    return {};
  },
  async wait(c) {
    await page(c.page).waitForSelector(c.selector, { timeout: c.timeout_ms || 10000,
                                                     state: c.state || "attached" });
    return {};
  },
  async texts(c) {
    return { texts: await page(c.page).$$eval(c.selector, (els) => els.map((e) => e.textContent)) };
  },
  async dialogs(c) {
    const d = dialogs.get(c.page);
    if (!d)
      throw new Error("no page " + c.page);
    d.answer = c.answer;
    return { seen: d.seen };
  },
  async close(c) {
    await page(c.page).close();
    pages.delete(c.page);
    dialogs.delete(c.page);
    return {};
  },
  async quit() {
    if (browser)
      await browser.close();
    browser = null;
    return {};
  },
};

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  let answer, c = {};
  try {
    c = JSON.parse(line);
    const fn = commands[c.cmd];
    if (!fn)
      throw new Error("unknown command " + c.cmd);
    answer = { ok: true, ...(await fn(c)) };
  } catch (e) {
    answer = { ok: false, error: String(e && e.message ? e.message : e) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
  if (c.cmd === "quit")
    break;
}
if (browser)
  await browser.close();
