// The echo voice agent of bench/media.py: a WebSocket server (npm's ws) that sends every media
// frame it receives straight back, so each call's audio crosses callplane both ways. Every
// second it writes its counters to the file named on the command line:
// {"streams", "open", "in", "out"}. Usage: node echo.js PORT STATS_FILE
'use strict';
const fs = require('fs');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2]);
const out = process.argv[3];
const stats = { streams: 0, open: 0, in: 0, out: 0 };

const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
wss.on('connection', (ws) => {
  stats.streams++;
  stats.open++;
  let sid = null;
  ws.on('message', (data) => {
    const m = JSON.parse(data);
    if (m.event === 'start') {
      sid = m.streamSid;
    } else if (m.event === 'media') {
      stats.in++;
      ws.send(JSON.stringify({ event: 'media', streamSid: sid, media: { payload: m.media.payload } }));
      stats.out++;
    }
  });
  ws.on('close', () => { stats.open--; });
  ws.on('error', () => {});
});

setInterval(() => {
  fs.writeFileSync(out + '.tmp', JSON.stringify(stats));
  fs.renameSync(out + '.tmp', out);
}, 1000);
