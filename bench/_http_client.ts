/**
 * A minimal HTTP/1.1 keep-alive client for the benchmark: one request at a
 * time per connection, bodies framed by Content-Length only. Far cheaper in
 * CPU than `fetch`, so the load generator does not steal the servers' cores.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const headerEnd = encoder.encode("\r\n\r\n");

/** A response: status and body bytes. */
export interface HttpReply {
  /** The HTTP status code. */
  status: number;
  /** The body. */
  body: Uint8Array;
}

/** One keep-alive connection to `host:port`. */
export class HttpConnection {
  #connection: Deno.TcpConn;
  #host: string;
  #buffer = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;

  private constructor(connection: Deno.TcpConn, host: string) {
    this.#connection = connection;
    this.#host = host;
  }

  /** Opens a connection to the origin of `url`. */
  static async open(url: string): Promise<HttpConnection> {
    const { hostname, port, host } = new URL(url);
    const connection = await Deno.connect({
      hostname: hostname.replace(/^\[|\]$/g, ""),
      port: Number(port || 80),
    });
    connection.setNoDelay(true);
    return new HttpConnection(connection, host);
  }

  /** Sends one request and reads its response. */
  async request(
    method: string,
    path: string,
    body?: Uint8Array,
  ): Promise<HttpReply> {
    const length = body?.byteLength ?? 0;
    const head = `${method} ${path} HTTP/1.1\r\nhost: ${this.#host}\r\n` +
      `content-length: ${length}\r\n\r\n`;
    const headBytes = encoder.encode(head);
    const message = new Uint8Array(headBytes.byteLength + length);
    message.set(headBytes);
    if (body) message.set(body, headBytes.byteLength);
    await writeAll(this.#connection, message);
    return await this.#readResponse();
  }

  /** Closes the connection. */
  close(): void {
    try {
      this.#connection.close();
    } catch {
      // Already closed by the peer.
    }
  }

  async #readResponse(): Promise<HttpReply> {
    let split = this.#find(headerEnd);
    while (split < 0) {
      await this.#fill();
      split = this.#find(headerEnd);
    }
    const head = decoder.decode(this.#buffer.subarray(this.#start, split));
    this.#start = split + headerEnd.byteLength;
    const status = Number(head.slice(9, 12));
    const match = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (!match) throw new Error(`Response without content-length: ${head}`);
    const length = Number(match[1]);
    while (this.#end - this.#start < length) await this.#fill();
    const body = this.#buffer.slice(this.#start, this.#start + length);
    this.#start += length;
    return { status, body };
  }

  #find(pattern: Uint8Array): number {
    const buffer = this.#buffer;
    const last = this.#end - pattern.byteLength;
    outer: for (let at = this.#start; at <= last; at++) {
      for (let offset = 0; offset < pattern.byteLength; offset++) {
        if (buffer[at + offset] !== pattern[offset]) continue outer;
      }
      return at;
    }
    return -1;
  }

  async #fill(): Promise<void> {
    if (this.#start > 0) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    if (this.#end === this.#buffer.byteLength) {
      const grown = new Uint8Array(this.#buffer.byteLength * 2);
      grown.set(this.#buffer.subarray(0, this.#end));
      this.#buffer = grown;
    }
    const read = await this.#connection.read(
      this.#buffer.subarray(this.#end),
    );
    if (read === null) throw new Error("Connection closed by the server");
    this.#end += read;
  }
}

async function writeAll(connection: Deno.Conn, bytes: Uint8Array) {
  let written = 0;
  while (written < bytes.byteLength) {
    written += await connection.write(bytes.subarray(written));
  }
}
