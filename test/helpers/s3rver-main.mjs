// Child-process entry for test/helpers/s3rver.ts. Runs under `node --openssl-legacy-provider`:
// s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only has in the legacy provider.
import S3rver from 's3rver';

const [directory, bucket] = process.argv.slice(2);
const server = new S3rver({ port: 0, address: '127.0.0.1', directory, silent: true, configureBuckets: [{ name: bucket }] });
const { port } = await server.run();
process.stdout.write(`${JSON.stringify({ port })}\n`);
// Exit with the parent: stdin closes when the test process goes away, even if it never calls stop().
process.stdin.on('end', async () => {
  await server.close().catch(() => {});
  const { rm } = await import('node:fs/promises');
  await rm(directory, { recursive: true, force: true });
  process.exit(0);
});
process.stdin.resume();
