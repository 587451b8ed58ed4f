import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as pulumi from '@pulumi/pulumi';
import { installMocks, valueOf, settle, registered } from './mocks.ts';

// The real entry point, as `pulumi up` runs it, with stack configuration and mocked cloud.
installMocks('loft', 'prod');
pulumi.runtime.setAllConfig({
  'loft:certificateArn': 'arn:aws:acm:us-east-1:123456789012:certificate/abc',
  'loft:domainName': 'nix-cache.example.com',
  'loft:imageTag': 'v0.1.0',
});
const program = await import('../index.ts');
await settle();

test('the program exports the cache URL, bucket name, ECR repository URL and DB endpoint', async () => {
  assert.equal(await valueOf(program.cacheUrl), 'https://nix-cache.example.com');
  assert.match(await valueOf(program.bucketName), /^loft-cache-/);
  assert.equal(await valueOf(program.ecrRepositoryUrl), '123456789012.dkr.ecr.us-east-1.amazonaws.com/loft');
  assert.match(await valueOf(program.dbEndpoint!), /^loft-db\..*\.rds\.amazonaws\.com:5432$/);
  assert.equal(program.httpsEnabled, true);
});

test('the program exports what `aws ecs run-task` needs for migrations and one-off commands', async () => {
  assert.match(await valueOf(program.migrateTaskDefinitionArn), /loft-migrate/);
  assert.equal(await valueOf(program.migrateTaskFamily), 'loft-migrate');
  assert.equal((await valueOf(pulumi.output(program.taskSubnetIds))).length, 2);
  assert.equal(await valueOf(program.taskSecurityGroupId), 'loft-ecs_id');
  assert.equal(program.taskAssignPublicIp, false);
});

test('stack configuration reaches the resources: image tag and HTTPS listener', async () => {
  const td = registered.find((r) => r.type === 'aws:ecs/taskDefinition:TaskDefinition' && r.name === 'loft-api')!;
  const [c] = JSON.parse(td.inputs.containerDefinitions);
  assert.equal(c.image, '123456789012.dkr.ecr.us-east-1.amazonaws.com/loft:v0.1.0');
  const listeners = registered.filter((r) => r.type === 'aws:lb/listener:Listener').map((r) => r.inputs.port).sort();
  assert.deepEqual(listeners, [443, 80]);
});

test('the whole stack is about 50 resources, every one tagged where AWS takes tags', () => {
  const untaggable = new Set([
    'aws:ec2/routeTableAssociation:RouteTableAssociation',
    'aws:s3/bucketOwnershipControls:BucketOwnershipControls',
    'aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock',
    'aws:s3/bucketVersioning:BucketVersioning',
    'aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration',
    'aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration',
    'aws:s3/bucketPolicy:BucketPolicy',
    'aws:secretsmanager/secretVersion:SecretVersion',
    'aws:ecr/lifecyclePolicy:LifecyclePolicy',
    'aws:iam/rolePolicy:RolePolicy',
    'random:index/randomPassword:RandomPassword',
    'random:index/randomBytes:RandomBytes',
    'aws:appautoscaling/policy:Policy',
    'aws:sns/topicSubscription:TopicSubscription',
    'aws:cloudwatch/dashboard:Dashboard',
    'aws:route53/record:Record',
  ]);
  const resources = registered.filter((r) => r.type !== 'pulumi:pulumi:Stack');
  assert.ok(resources.length >= 40 && resources.length <= 70, `${resources.length} resources`);
  for (const r of resources) {
    if (untaggable.has(r.type)) continue;
    assert.equal(r.inputs.tags?.['loft:stack'], 'loft', `${r.type} ${r.name} is not tagged`);
  }
});
