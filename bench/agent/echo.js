// The echo voice agent of bench/media.py: a WebSocket server (npm's ws) that sends every media
// frame it receives back to callplane, so each call's audio crosses callplane both ways.
//
// A real agent speaks on its own clock (its TTS or model streams 20 ms frames), not in reply to
// each of our frames. So by default the echo is clocked: received payloads wait in a per-stream
// queue and one 20 ms timer sends each stream's oldest one. With --immediate every frame is sent
// back as soon as it arrives, which ties the agent's audio to callplane's own 20 ms clock (the
// far end, sipp -rtp_echo, returns what callplane sends): a closed loop that measures playout
// pacing rather than what callplane adds.
//
// Every second it writes its counters to the file named on the command line:
// {"streams", "open", "in", "out"}. Usage: node echo.js PORT STATS_FILE [--immediate]
'use strict';
const fs = require('fs');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2]);
const out = process.argv[3];
const immediate = process.argv.includes('--immediate');
const stats = { streams: 0, open: 0, in: 0, out: 0 };
const live = new Set();

const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
wss.on('connection', (ws) => {
  stats.streams++;
  stats.open++;
  const st = { ws, sid: null, queue: [] };
  live.add(st);
  ws.on('message', (data) => {
    const m = JSON.parse(data);
    if (m.event === 'start') {
      st.sid = m.streamSid;
    } else if (m.event === 'media') {
      stats.in++;
      if (immediate)
        send(st, m.media.payload);
      else if (st.queue.length < 50)      // at most 1 s behind; the rest is dropped
        st.queue.push(m.media.payload);
    }
  });
  ws.on('close', () => { stats.open--; live.delete(st); });
  ws.on('error', () => {});
});

function send(st, payload) {
  st.ws.send(JSON.stringify({ event: 'media', streamSid: st.sid, media: { payload } }));
  stats.out++;
}

if (!immediate) {
  setInterval(() => {
    for (const st of live)
      if (st.queue.length)
        send(st, st.queue.shift());
  }, 20);
}

setInterval(() => {
  fs.writeFileSync(out + '.tmp', JSON.stringify(stats));
  fs.renameSync(out + '.tmp', out);
}, 1000);
