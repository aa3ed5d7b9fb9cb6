// Where unacknowledged chunks wait: IndexedDB in the browser (survives
// reloads and crashes), memory in tests. Both have the same interface:
//
//   saveRecording(rec) / getRecording(id) / listRecordings() / deleteRecording(id)
//   putChunk(id, seq, bytes) / getChunk(id, seq) / deleteChunk(id, seq)
//   pendingChunks(id) -> [{seq, size}]
//
// A recording record is {id, token, title, watch, nextSeq, total, createdAt}.
// putChunk raises the recording's nextSeq past the chunk in the same
// transaction: after any crash, nextSeq counts every chunk ever stored, so
// a resumed upload declares the right total.

const DB_NAME = 'segcast-uploads';
const DB_VERSION = 1;

export class MemoryStore {
  constructor() {
    this.recordings = new Map();
    this.chunks = new Map(); // `${id}/${seq}` -> Uint8Array
  }
  async saveRecording(rec) {
    this.recordings.set(rec.id, structuredClone(rec));
  }
  async getRecording(id) {
    const rec = this.recordings.get(id);
    return rec ? structuredClone(rec) : undefined;
  }
  async listRecordings() {
    return [...this.recordings.values()].map((r) => structuredClone(r));
  }
  async deleteRecording(id) {
    this.recordings.delete(id);
    for (const key of [...this.chunks.keys()]) if (key.startsWith(`${id}/`)) this.chunks.delete(key);
  }
  async putChunk(id, seq, bytes) {
    this.chunks.set(`${id}/${seq}`, new Uint8Array(bytes));
    const rec = this.recordings.get(id);
    if (rec) rec.nextSeq = Math.max(rec.nextSeq ?? 0, seq + 1);
  }
  async getChunk(id, seq) {
    return this.chunks.get(`${id}/${seq}`);
  }
  async deleteChunk(id, seq) {
    this.chunks.delete(`${id}/${seq}`);
  }
  async pendingChunks(id) {
    return [...this.chunks.entries()]
      .filter(([key]) => key.startsWith(`${id}/`))
      .map(([key, bytes]) => ({ seq: Number(key.slice(id.length + 1)), size: bytes.byteLength }))
      .sort((a, b) => a.seq - b.seq);
  }
}

export class IdbStore {
  static open() {
    return new Promise((resolve, reject) => {
      const request = indexedDB.open(DB_NAME, DB_VERSION);
      request.onupgradeneeded = () => {
        const db = request.result;
        db.createObjectStore('recordings', { keyPath: 'id' });
        const chunks = db.createObjectStore('chunks', { keyPath: ['id', 'seq'] });
        chunks.createIndex('byRecording', 'id');
      };
      request.onsuccess = () => resolve(new IdbStore(request.result));
      request.onerror = () => reject(request.error);
    });
  }

  constructor(db) {
    this.db = db;
  }

  /** Runs `work(stores)` in one transaction; resolves with its result once
   * the transaction has committed (so a put is durable when we go on). */
  tx(names, mode, work) {
    return new Promise((resolve, reject) => {
      const tx = this.db.transaction(names, mode, { durability: 'strict' });
      const stores = Object.fromEntries(names.map((n) => [n, tx.objectStore(n)]));
      let result;
      Promise.resolve(work(stores)).then((r) => (result = r), reject);
      tx.oncomplete = () => resolve(result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error('transaction aborted'));
    });
  }

  saveRecording(rec) {
    return this.tx(['recordings'], 'readwrite', (s) => void s.recordings.put(rec));
  }
  getRecording(id) {
    return this.tx(['recordings'], 'readonly', (s) => request(s.recordings.get(id)));
  }
  listRecordings() {
    return this.tx(['recordings'], 'readonly', (s) => request(s.recordings.getAll()));
  }
  deleteRecording(id) {
    return this.tx(['recordings', 'chunks'], 'readwrite', (s) => {
      s.recordings.delete(id);
      s.chunks.delete(IDBKeyRange.bound([id, -Infinity], [id, Infinity]));
    });
  }
  putChunk(id, seq, bytes) {
    return this.tx(['recordings', 'chunks'], 'readwrite', async (s) => {
      s.chunks.put({ id, seq, bytes, size: bytes.byteLength });
      const rec = await request(s.recordings.get(id));
      if (rec && (rec.nextSeq ?? 0) <= seq) s.recordings.put({ ...rec, nextSeq: seq + 1 });
    });
  }
  async getChunk(id, seq) {
    const row = await this.tx(['chunks'], 'readonly', (s) => request(s.chunks.get([id, seq])));
    return row && row.bytes;
  }
  deleteChunk(id, seq) {
    return this.tx(['chunks'], 'readwrite', (s) => void s.chunks.delete([id, seq]));
  }
  async pendingChunks(id) {
    const keys = await this.tx(['chunks'], 'readonly', (s) =>
      request(s.chunks.index('byRecording').getAll(IDBKeyRange.only(id))),
    );
    return keys.map((row) => ({ seq: row.seq, size: row.size })).sort((a, b) => a.seq - b.seq);
  }
}

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** IndexedDB when the browser has it, memory otherwise (nothing survives a
 * reload then, and the page says so). */
export async function openStore() {
  try {
    return { store: await IdbStore.open(), durable: true };
  } catch {
    return { store: new MemoryStore(), durable: false };
  }
}
