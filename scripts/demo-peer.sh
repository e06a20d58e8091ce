#!/usr/bin/env bash
# `make run`'s demo far end: a real softphone (baresip, Debian's baresip-core) that answers
# every call at once and plays a 440 Hz tone, so the README's example call reaches something.
# usage: scripts/demo-peer.sh HOST:PORT DIR   (config, tone and log go into DIR; runs until
# killed). What it hears goes nowhere (aubridge: a device nobody reads).
set -euo pipefail
listen=$1 dir=$2
mkdir -p "$dir"
python3 - "$dir/tone.wav" <<'PY'
import math, struct, sys, wave
with wave.open(sys.argv[1], "wb") as w:       # 8 kHz mono 16-bit, 60 s (baresip loops it)
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000)
    w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * n / 8000)))
                           for n in range(8000 * 60)))
PY
cat > "$dir/config" <<CFG
poll_method epoll
sip_listen $listen
net_interface ${listen%:*}
audio_source aufile,$dir/tone.wav
audio_player aubridge,demo-sink
audio_alert aubridge,demo-alert
rtp_timeout 0
statmode_default off
module_path /usr/lib/baresip/modules
module g711.so
module aufile.so
module aubridge.so
module_app account.so
module_app menu.so
CFG
echo "<sip:bob@$listen>;regint=0;answermode=auto;audio_codecs=PCMU,PCMA" > "$dir/accounts"
exec baresip -f "$dir"
