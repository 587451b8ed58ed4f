import { test } from 'node:test';
import assert from 'node:assert/strict';
import { installMocks, valueOf, valuesOf, settle, ofType } from './mocks.ts';

installMocks();
const { createLoftStack, HEALTH_CHECK_PATH } = await import('../stack.ts');
const { resolveConfig } = await import('../config.ts');

const warnings: string[] = [];
const realWarn = console.warn;
console.warn = (...args: unknown[]) => void warnings.push(args.join(' '));
const stack = createLoftStack(resolveConfig({ name: 'svc' }));
const httpOnlyWarnings = warnings.splice(0);
const tls = createLoftStack(
  resolveConfig({
    name: 'tls',
    certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/abc',
    domainName: 'cache.example.com',
    signingKeySecretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:loft/signing-key-AbCdEf',
  }),
);
const tlsWarnings = warnings.splice(0);
console.warn = realWarn;
const byo = createLoftStack(
  resolveConfig({
    name: 'byo',
    vpcId: 'vpc-123',
    publicSubnetIds: ['subnet-pub-a', 'subnet-pub-b'],
    privateSubnetIds: ['subnet-priv-a', 'subnet-priv-b'],
    apiDesiredCount: 3,
  }),
);
const nonat = createLoftStack(resolveConfig({ name: 'nonat', natGateway: false }));
await settle();

type Container = {
  name: string;
  image: string;
  command: string[];
  environment: Array<{ name: string; value: string }>;
  secrets: Array<{ name: string; valueFrom: string }>;
  portMappings: Array<{ containerPort: number }>;
  logConfiguration: { logDriver: string; options: Record<string, string> };
};
async function containers(s: typeof stack, mode: 'api' | 'worker' | 'migrate'): Promise<Container[]> {
  return JSON.parse(await valueOf(s.taskDefinitions[mode].containerDefinitions));
}
const env = (c: Container) => Object.fromEntries(c.environment.map((e) => [e.name, e.value]));

test('the target group health-checks GET /v1/healthz every 30 s, 5 s timeout, 3 failures, 30 s deregistration', async () => {
  const tg = stack.targetGroup;
  const hc = await valueOf(tg.healthCheck);
  assert.equal(HEALTH_CHECK_PATH, '/v1/healthz');
  assert.equal(hc!.path, '/v1/healthz');
  assert.equal(hc!.protocol, 'HTTP');
  assert.equal(hc!.matcher, '200');
  assert.equal(hc!.interval, 30);
  assert.equal(hc!.timeout, 5);
  assert.equal(hc!.unhealthyThreshold, 3);
  assert.equal(await valueOf(tg.deregistrationDelay), 30);
  assert.equal(await valueOf(tg.port), 8080);
  assert.equal(await valueOf(tg.protocol), 'HTTP');
  assert.equal(await valueOf(tg.targetType), 'ip', 'Fargate tasks register by IP');
});

test('the api service runs `serve --mode api` behind the ALB, 2 tasks by default', async () => {
  const svc = stack.apiService;
  assert.equal(await valueOf(svc.desiredCount), 2);
  assert.equal(await valueOf(svc.launchType), 'FARGATE');
  assert.equal(await valueOf(svc.deploymentMinimumHealthyPercent), 100, 'rollouts keep full capacity');
  assert.equal(await valueOf(svc.taskDefinition), await valueOf(stack.taskDefinitions.api.arn));
  assert.equal(await valueOf(svc.cluster), await valueOf(stack.clusterArn));
  const lbs = await valueOf(svc.loadBalancers);
  assert.deepEqual(lbs, [{ targetGroupArn: await valueOf(stack.targetGroup.arn), containerName: 'loft', containerPort: 8080 }]);
  const net = await valueOf(svc.networkConfiguration);
  assert.deepEqual(net!.securityGroups, [await valueOf(stack.securityGroups.ecs.id)]);
  assert.equal(net!.assignPublicIp, false);
  assert.deepEqual(net!.subnets, await valuesOf(stack.network.privateSubnetIds), 'tasks run in the private subnets');

  const [c, ...rest] = await containers(stack, 'api');
  assert.equal(rest.length, 0);
  assert.deepEqual(c!.command, ['serve', '--mode', 'api']);
  assert.deepEqual(c!.portMappings.map((p) => p.containerPort), [8080]);
  assert.equal((c as unknown as { stopTimeout: number }).stopTimeout, 120, 'above the deregistration delay');
  assert.equal(c!.image, `${await valueOf(stack.repository.repositoryUrl)}:latest`);
});

test('the api container gets LOFT_STORAGE_TYPE=s3 etc. as env, and the DB URL and token secret only as secrets', async () => {
  const [c] = await containers(stack, 'api');
  const e = env(c!);
  assert.equal(e.LOFT_LISTEN, '0.0.0.0:8080');
  assert.equal(e.LOFT_STORAGE_TYPE, 's3');
  assert.equal(e.LOFT_S3_BUCKET, await valueOf(stack.bucket.bucket));
  assert.equal(e.LOFT_S3_REGION, 'us-east-1');
  assert.equal(e.LOFT_PUBLIC_URL, await valueOf(stack.cacheUrl));
  assert.equal(e.LOFT_DATABASE_URL, undefined, 'the database URL must not be plain env');
  assert.equal(e.LOFT_TOKEN_HS256_SECRET, undefined, 'the token secret must not be plain env');
  assert.ok(!JSON.stringify(c).includes('mockpassword'), 'no password anywhere in the task definition');
  assert.deepEqual(c!.secrets, [
    { name: 'LOFT_DATABASE_URL', valueFrom: await valueOf(stack.dbUrlSecretArn) },
    { name: 'LOFT_TOKEN_HS256_SECRET', valueFrom: await valueOf(stack.tokenSecret.arn) },
  ]);
  assert.equal(c!.logConfiguration.logDriver, 'awslogs');
  assert.equal(c!.logConfiguration.options['awslogs-group'], await valueOf(stack.logGroup.name));
});

test('the api and worker task definitions use the execution role and the S3-only task role on Fargate', async () => {
  for (const mode of ['api', 'worker', 'migrate'] as const) {
    const td = stack.taskDefinitions[mode];
    assert.equal(await valueOf(td.executionRoleArn), await valueOf(stack.executionRole.arn));
    assert.equal(await valueOf(td.taskRoleArn), await valueOf(stack.taskRole.arn));
    assert.deepEqual(await valueOf(td.requiresCompatibilities), ['FARGATE']);
    assert.equal(await valueOf(td.networkMode), 'awsvpc');
  }
});

test('the worker service runs `serve --mode worker`, 1 task, no load balancer', async () => {
  const svc = stack.workerService;
  assert.equal(await valueOf(svc.desiredCount), 1);
  assert.equal(await valueOf(svc.taskDefinition), await valueOf(stack.taskDefinitions.worker.arn));
  assert.equal(await valueOf(svc.loadBalancers), undefined);
  const [c] = await containers(stack, 'worker');
  assert.deepEqual(c!.command, ['serve', '--mode', 'worker']);
  assert.deepEqual(c!.portMappings, []);
  assert.equal(env(c!).LOFT_STORAGE_TYPE, 's3');
  assert.deepEqual(c!.secrets.map((s) => s.name), ['LOFT_DATABASE_URL', 'LOFT_TOKEN_HS256_SECRET']);
  assert.equal(ofType('aws:ecs/service:Service', 'svc-').length, 2, 'exactly the api and worker services');
});

test('a one-shot `serve --mode migrate` task definition exists for the release pipeline (no service)', async () => {
  const [c] = await containers(stack, 'migrate');
  assert.deepEqual(c!.command, ['serve', '--mode', 'migrate']);
  assert.equal(await valueOf(stack.taskDefinitions.migrate.family), 'svc-migrate');
  assert.ok(ofType('aws:ecs/service:Service', 'svc-').every((s) => !s.name.includes('migrate')));
});

test('without a certificate: one HTTP listener forwarding to the target group, and a warning', async () => {
  assert.equal(stack.httpsEnabled, false);
  assert.equal(stack.listeners.length, 1);
  const l = stack.listeners[0]!;
  assert.equal(await valueOf(l.port), 80);
  assert.equal(await valueOf(l.protocol), 'HTTP');
  assert.deepEqual((await valueOf(l.defaultActions)).map((a) => [a.type, a.targetGroupArn]), [['forward', await valueOf(stack.targetGroup.arn)]]);
  assert.match(await valueOf(stack.cacheUrl), /^http:\/\/svc-alb-\d+\.us-east-1\.elb\.amazonaws\.com$/);
  assert.equal(httpOnlyWarnings.length, 2, 'HTTP only, and no signing key in Secrets Manager');
  assert.ok(httpOnlyWarnings.some((w) => /no certificateArn.*HTTP only/.test(w)));
  assert.ok(httpOnlyWarnings.some((w) => /no signingKey or signingKeySecretArn.*generated into the database/.test(w)));
});

test('with a certificate: HTTPS 443 forwards (TLS 1.3 policy), HTTP 80 redirects, no warning', async () => {
  assert.equal(tlsWarnings.length, 0);
  assert.equal(tls.httpsEnabled, true);
  const ls = await Promise.all(
    tls.listeners.map(async (l) => ({
      port: await valueOf(l.port),
      protocol: await valueOf(l.protocol),
      cert: await valueOf(l.certificateArn),
      policy: await valueOf(l.sslPolicy),
      actions: await valueOf(l.defaultActions),
    })),
  );
  const https = ls.find((l) => l.port === 443)!;
  assert.equal(https.protocol, 'HTTPS');
  assert.equal(https.cert, 'arn:aws:acm:us-east-1:123456789012:certificate/abc');
  assert.equal(https.policy, 'ELBSecurityPolicy-TLS13-1-2-2021-06');
  assert.equal(https.actions[0]!.type, 'forward');
  const http = ls.find((l) => l.port === 80)!;
  assert.deepEqual(http.actions.map((a) => [a.type, a.redirect?.protocol, a.redirect?.statusCode]), [['redirect', 'HTTPS', 'HTTP_301']]);
  assert.equal(await valueOf(tls.cacheUrl), 'https://cache.example.com');
  const [c] = await containers(tls, 'api');
  assert.equal(env(c!).LOFT_PUBLIC_URL, 'https://cache.example.com');
});

test('the created VPC has 2 public and 2 private subnets in 2 AZs, a NAT gateway and an S3 gateway endpoint', async () => {
  const subnets = ofType('aws:ec2/subnet:Subnet', 'svc-');
  const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
  const pub = subnets.filter((s) => s.name.includes('public')).sort(byName);
  const priv = subnets.filter((s) => s.name.includes('private')).sort(byName);
  assert.equal(pub.length, 2);
  assert.equal(priv.length, 2);
  assert.deepEqual(pub.map((s) => s.inputs.availabilityZone), ['us-east-1a', 'us-east-1b']);
  assert.deepEqual(priv.map((s) => s.inputs.availabilityZone), ['us-east-1a', 'us-east-1b']);
  assert.deepEqual(subnets.map((s) => s.inputs.cidrBlock).sort(), ['10.0.0.0/24', '10.0.1.0/24', '10.0.10.0/24', '10.0.11.0/24']);
  assert.equal(ofType('aws:ec2/natGateway:NatGateway', 'svc-').length, 1);
  const endpoints = ofType('aws:ec2/vpcEndpoint:VpcEndpoint', 'svc-');
  assert.deepEqual(endpoints.map((e) => [e.inputs.serviceName, e.inputs.vpcEndpointType]), [['com.amazonaws.us-east-1.s3', 'Gateway']]);
  const albSubnets = await valueOf(stack.alb!.subnets);
  assert.deepEqual(albSubnets, await valuesOf(stack.network.publicSubnetIds), 'the ALB is in the public subnets');
  assert.equal(await valueOf(stack.alb!.internal), false);
});

test('natGateway=false: no NAT gateway, tasks in the public subnets with a public IP', async () => {
  assert.equal(ofType('aws:ec2/natGateway:NatGateway', 'nonat-').length, 0);
  const net = await valueOf(nonat.apiService.networkConfiguration);
  assert.equal(net!.assignPublicIp, true);
  assert.deepEqual(net!.subnets, await valuesOf(nonat.network.publicSubnetIds));
  const dbSubnets = ofType('aws:rds/subnetGroup:SubnetGroup', 'nonat-')[0]!;
  assert.deepEqual(dbSubnets.inputs.subnetIds, await valuesOf(nonat.network.privateSubnetIds), 'RDS stays private');
});

test('an existing VPC and subnets are used as given, and no network is created', async () => {
  assert.equal(ofType('aws:ec2/vpc:Vpc', 'byo-').length, 0);
  assert.equal(ofType('aws:ec2/subnet:Subnet', 'byo-').length, 0);
  assert.deepEqual(await valueOf(byo.alb!.subnets), ['subnet-pub-a', 'subnet-pub-b']);
  const net = await valueOf(byo.apiService.networkConfiguration);
  assert.deepEqual(net!.subnets, ['subnet-priv-a', 'subnet-priv-b']);
  assert.equal(await valueOf(byo.targetGroup.vpcId), 'vpc-123');
  assert.equal(await valueOf(byo.securityGroups.rds!.vpcId), 'vpc-123');
  assert.equal(await valueOf(byo.apiService.desiredCount), 3);
});
