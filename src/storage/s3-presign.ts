// Presigned GET URLs without @aws-sdk/s3-request-presigner (not installed): the same technique that
// package uses. The command runs through a clone of the client's middleware stack, so endpoint,
// path style and credentials resolve exactly as for a real request; a middleware placed just before
// signing presigns the request with the client's own signer and returns it instead of sending it.
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';

// Structural views of the SDK's HttpRequest and SignatureV4MultiRegion (their type packages are not our deps).
interface HttpRequestLike {
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  headers: Record<string, string>;
  query: Record<string, string | string[] | null>;
}
interface Presigner {
  presign(
    request: HttpRequestLike,
    options: { expiresIn: number; signingRegion: string; signingService: string },
  ): Promise<HttpRequestLike>;
}

export async function presignGetObject(client: S3Client, bucket: string, key: string, expiresIn: number): Promise<string> {
  const signer = (await client.config.signer()) as Partial<Presigner>;
  if (typeof signer.presign !== 'function') throw new Error('S3 client signer cannot presign requests');
  const presigner = signer as Presigner;
  const signingRegion = await client.config.region();

  const stack = client.middlewareStack.clone();
  stack.addRelativeTo(
    () => async (args: { request?: unknown }) => {
      const request = args.request as HttpRequestLike;
      // Sign only what a downloader will send: the host. SDK headers (user agent, retry ids) are dropped.
      request.headers = {
        host: request.hostname + (request.port != null ? `:${request.port}` : ''),
        'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
      };
      const presigned = await presigner.presign(request, { expiresIn, signingRegion, signingService: 's3' });
      return { response: {}, output: { $metadata: {}, presigned } } as never;
    },
    { name: 'loftPresignGet', relation: 'before', toMiddleware: 'httpSigningMiddleware', override: true },
  );
  const command = new GetObjectCommand({ Bucket: bucket, Key: key });
  const { output } = await command.resolveMiddleware(stack, client.config, {})({ input: command.input });
  return formatUrl((output as unknown as { presigned: HttpRequestLike }).presigned);
}

function formatUrl(request: HttpRequestLike): string {
  const query = Object.entries(request.query)
    .flatMap(([name, value]) => (value === null ? [name] : [value].flat().map((v) => `${name}=${encodeRfc3986(v)}`)))
    .join('&');
  const port = request.port != null ? `:${request.port}` : '';
  return `${request.protocol}//${request.hostname}${port}${request.path}${query ? `?${query}` : ''}`;
}

function encodeRfc3986(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
