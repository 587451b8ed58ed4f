import { test } from 'node:test';
import assert from 'node:assert/strict';
import { installMocks, valueOf, valuesOf, settle, ofType, secretInput } from './mocks.ts';

installMocks();
const { createLoftStack } = await import('../stack.ts');
const { resolveConfig, DEFAULTS } = await import('../config.ts');
const stack = createLoftStack(resolveConfig({ name: 'sto' }));
const tiered = createLoftStack(resolveConfig({ name: 'tier', intelligentTieringDays: 30, bucketName: 'acme-loft-cache' }));
await settle();

test('the bucket has versioning enabled', async () => {
  assert.equal(await valueOf(stack.bucketVersioning.bucket), await valueOf(stack.bucket.id));
  assert.deepEqual(await valueOf(stack.bucketVersioning.versioningConfiguration), { status: 'Enabled' });
});

test('the bucket blocks every kind of public access and enforces bucket-owner ownership', async () => {
  const b = stack.bucketPublicAccessBlock;
  assert.equal(await valueOf(b.bucket), await valueOf(stack.bucket.id));
  for (const flag of [b.blockPublicAcls, b.blockPublicPolicy, b.ignorePublicAcls, b.restrictPublicBuckets]) {
    assert.equal(await valueOf(flag), true);
  }
  const ownership = ofType('aws:s3/bucketOwnershipControls:BucketOwnershipControls', 'sto-');
  assert.deepEqual(ownership.map((r) => r.inputs.rule), [{ objectOwnership: 'BucketOwnerEnforced' }]);
});

test('the bucket is encrypted at rest (SSE) and refuses plain-HTTP access', async () => {
  const rules = await valueOf(stack.bucketEncryption.rules);
  assert.equal(rules[0]!.applyServerSideEncryptionByDefault!.sseAlgorithm, 'AES256');
  const policy = JSON.parse(await valueOf(stack.bucketPolicy.policy));
  assert.deepEqual(policy.Statement.map((s: any) => [s.Effect, s.Condition]), [['Deny', { Bool: { 'aws:SecureTransport': 'false' } }]]);
  const bucketArn = await valueOf(stack.bucket.arn);
  const [deny] = policy.Statement;
  assert.equal(deny.Principal, '*', 'whoever asks, including the task role');
  assert.equal(deny.Action, 's3:*');
  assert.deepEqual(deny.Resource, [bucketArn, `${bucketArn}/*`], 'the bucket and every object');
});

test('a lifecycle rule aborts incomplete multipart uploads after 7 days; no tiering by default', async () => {
  assert.equal(DEFAULTS.abortIncompleteMultipartDays, 7);
  const rules = (await valueOf(stack.bucketLifecycle.rules)) ?? [];
  const abort = rules.filter((r) => r.abortIncompleteMultipartUpload);
  assert.equal(abort.length, 1);
  assert.equal(abort[0]!.status, 'Enabled');
  assert.deepEqual(abort[0]!.filter, {}, 'applies to the whole bucket');
  assert.equal(abort[0]!.abortIncompleteMultipartUpload!.daysAfterInitiation, 7);
  assert.ok(rules.every((r) => !r.transitions), 'no transition rule unless intelligentTieringDays > 0');
  const noncurrent = rules.find((r) => r.noncurrentVersionExpiration);
  assert.equal(noncurrent?.noncurrentVersionExpiration?.noncurrentDays, 90);
  assert.equal(rules.some((r) => r.expiration?.days !== undefined), false, 'current objects never expire');
});

test('intelligentTieringDays adds an Intelligent-Tiering transition; bucketName names the bucket', async () => {
  const rules = (await valueOf(tiered.bucketLifecycle.rules)) ?? [];
  const t = rules.find((r) => r.transitions);
  assert.deepEqual(t?.transitions, [{ days: 30, storageClass: 'INTELLIGENT_TIERING' }]);
  assert.equal(await valueOf(tiered.bucket.bucket), 'acme-loft-cache');
  assert.equal(await valueOf(tiered.bucket.arn), 'arn:aws:s3:::acme-loft-cache');
});

test('RDS is PostgreSQL 16, not publicly accessible, encrypted, with 7 days of backups', async () => {
  const db = stack.db!;
  assert.equal(await valueOf(db.engine), 'postgres');
  assert.equal(await valueOf(db.engineVersion), '16');
  assert.equal(await valueOf(db.instanceClass), 'db.t4g.micro');
  assert.equal(await valueOf(db.publiclyAccessible), false);
  assert.equal(await valueOf(db.storageEncrypted), true);
  assert.equal(await valueOf(db.backupRetentionPeriod), 7);
  assert.equal(await valueOf(db.deletionProtection), true);
  assert.equal(await valueOf(db.port), 5432);
  assert.deepEqual(await valueOf(db.vpcSecurityGroupIds), [await valueOf(stack.securityGroups.rds!.id)]);
  const subnetGroup = ofType('aws:rds/subnetGroup:SubnetGroup', 'sto-')[0]!;
  assert.deepEqual(subnetGroup.inputs.subnetIds, await valuesOf(stack.network.privateSubnetIds), 'in the private subnets');
});

test('RDS requires TLS of every connection (rds.force_ssl=1) and the URL asks for it (sslmode)', async () => {
  const pg = stack.dbParameterGroup!;
  assert.equal(await valueOf(pg.family), 'postgres16');
  assert.deepEqual(await valueOf(pg.parameters), [{ name: 'rds.force_ssl', value: '1', applyMethod: 'immediate' }]);
  assert.equal(await valueOf(stack.db!.parameterGroupName), await valueOf(pg.name));
  const url = ofType('aws:secretsmanager/secretVersion:SecretVersion', 'sto-database-url')[0]!;
  assert.match(secretInput(url.inputs.secretString), /\?sslmode=no-verify$/);
});

test('the database password is generated, and the URL and token secret live in Secrets Manager', async () => {
  const pw = ofType('random:index/randomPassword:RandomPassword', 'sto-');
  assert.equal(pw.length, 1);
  assert.equal(pw[0]!.inputs.length, 32);
  assert.equal(pw[0]!.inputs.special, false, 'URL-safe without escaping');
  const versions = ofType('aws:secretsmanager/secretVersion:SecretVersion', 'sto-');
  const byName = Object.fromEntries(versions.map((v) => [v.name, v]));
  const url = byName['sto-database-url']!;
  assert.equal(url.inputs.secretId, 'sto-database-url_id');
  assert.match(await valueOf(stack.dbUrlSecretArn), /:secret:sto-database-url-/);
  assert.equal(
    secretInput(url.inputs.secretString),
    'postgresql://loft:mockpasswordmockpasswordmockpass@sto-db.cx0example.us-east-1.rds.amazonaws.com:5432/loft?sslmode=no-verify',
  );
  const token = byName['sto-token-hs256-secret']!;
  assert.equal(token.inputs.secretId, await valueOf(stack.tokenSecret.id));
  assert.equal(Buffer.from(secretInput(token.inputs.secretString), 'base64').length, 32, 'base64 of ≥ 32 bytes, as the server requires');
  // The password reaches RDS and nothing else in plain form.
  assert.equal(await valueOf(stack.db!.password), 'mockpasswordmockpasswordmockpass');
});
