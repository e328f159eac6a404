"""Peer benchmark: google-cloud-storage's transfer_manager.download_chunks_concurrently.

Usage: STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT python tm_download.py BUCKET OBJECT DEST WORKERS CHUNK_BYTES [thread|process]
Prints one JSON line: seconds, MBps, workers, worker_type, peak RSS of this process (children excluded).
"""
import json
import resource
import sys
import time

from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage import transfer_manager

bucket_name, object_name, dest, workers, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
worker_type = sys.argv[6] if len(sys.argv) > 6 else "process"
client = storage.Client(project="bench", credentials=AnonymousCredentials())
blob = client.bucket(bucket_name).blob(object_name)
blob.reload()
start = time.monotonic()
transfer_manager.download_chunks_concurrently(
    blob, dest, chunk_size=chunk, max_workers=workers,
    worker_type=transfer_manager.THREAD if worker_type == "thread" else transfer_manager.PROCESS,
    crc32c_checksum=False,
)
seconds = time.monotonic() - start
print(json.dumps({"tool": "transfer_manager", "worker_type": worker_type, "workers": workers, "chunk_size": chunk,
                  "bytes": blob.size, "seconds": seconds, "MBps": blob.size / seconds / 1e6,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
