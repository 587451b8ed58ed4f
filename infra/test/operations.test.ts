// The seed's operations sections: alarms on an SNS topic, the dashboard, api autoscaling, the
// Route 53 alias, and the signing key in Secrets Manager (the server's LOFT_SIGNING_KEY).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as pulumi from '@pulumi/pulumi';
import { installMocks, valueOf, settle, ofType, secretInput } from './mocks.ts';

installMocks();
const { createLoftStack } = await import('../stack.ts');
const { resolveConfig } = await import('../config.ts');
const { GiB } = await import('../monitoring.ts');

const stack = createLoftStack(resolveConfig({ name: 'ops', alarmEmails: ['oncall@example.com', 'devops@example.com'] }));
const tuned = createLoftStack(
  resolveConfig({
    name: 'tuned',
    bucketSizeAlarmGb: 50,
    apiDesiredCount: 2,
    apiMinCount: 2,
    apiMaxCount: 6,
    scaleCpuPercent: 50,
    scaleRequestsPerTarget: 500,
    workerDesiredCount: 0,
    domainName: 'cache.example.com',
    hostedZoneId: 'Z0123456789ABC',
    signingKey: pulumi.secret('cache.example.com-1:c2VjcmV0'),
  }),
);
const paused = createLoftStack(resolveConfig({ name: 'paused', apiDesiredCount: 0, workerDesiredCount: 0 }));
await settle();

const alarm = (s: typeof stack, key: string) => {
  const a = s.monitoring.alarms[key];
  assert.ok(a, `alarm ${key}`);
  return a;
};
const props = async (a: ReturnType<typeof alarm>) => ({
  namespace: await valueOf(a.namespace),
  metricName: await valueOf(a.metricName),
  statistic: await valueOf(a.statistic),
  dimensions: await valueOf(a.dimensions),
  period: await valueOf(a.period),
  evaluationPeriods: await valueOf(a.evaluationPeriods),
  comparisonOperator: await valueOf(a.comparisonOperator),
  threshold: await valueOf(a.threshold),
  treatMissingData: await valueOf(a.treatMissingData),
});

const ids = async (s: typeof stack) => ({
  cluster: await valueOf(s.clusterName),
  api: await valueOf(s.apiService.name),
  worker: await valueOf(s.workerService.name),
  alb: await valueOf(s.albArnSuffix),
  tg: await valueOf(s.targetGroup.arnSuffix),
  db: await valueOf(s.db!.identifier),
  bucket: await valueOf(s.bucket.bucket),
});

test('every alarm notifies the SNS topic on alarm and on recovery; e-mail addresses are subscribed', async () => {
  const topic = await valueOf(stack.monitoring.topic.arn);
  assert.deepEqual(Object.keys(stack.monitoring.alarms).sort(), ['apiTasks', 'bucketSize', 'dbCpu', 'dbStorage', 'http5xx', 'unhealthyTargets', 'workerTasks']);
  for (const a of Object.values(stack.monitoring.alarms)) {
    assert.deepEqual(await valueOf(a.alarmActions), [topic]);
    assert.deepEqual(await valueOf(a.okActions), [topic]);
  }
  const subs = ofType('aws:sns/topicSubscription:TopicSubscription', 'ops-');
  assert.deepEqual(subs.map((s) => [s.inputs.topic, s.inputs.protocol, s.inputs.endpoint]), [
    [topic, 'email', 'oncall@example.com'],
    [topic, 'email', 'devops@example.com'],
  ]);
  assert.equal(ofType('aws:sns/topicSubscription:TopicSubscription', 'tuned-').length, 0, 'no subscription by default');
});

test('ECS: an alarm as soon as a service has no running task (no CPU sample in a minute)', async () => {
  const i = await ids(stack);
  for (const [key, service] of [['apiTasks', i.api], ['workerTasks', i.worker]] as const) {
    assert.deepEqual(await props(alarm(stack, key)), {
      namespace: 'AWS/ECS',
      metricName: 'CPUUtilization',
      statistic: 'SampleCount',
      dimensions: { ClusterName: i.cluster, ServiceName: service },
      period: 60,
      evaluationPeriods: 1,
      comparisonOperator: 'LessThanThreshold',
      threshold: 1,
      treatMissingData: 'breaching',
    });
  }
  assert.equal(tuned.monitoring.alarms.workerTasks, undefined, 'a service scaled to 0 on purpose does not alarm');
});

test('ALB: unhealthy targets > 0 for 5 minutes; more than 10 5xx answers per minute', async () => {
  const i = await ids(stack);
  assert.deepEqual(await props(alarm(stack, 'unhealthyTargets')), {
    namespace: 'AWS/ApplicationELB',
    metricName: 'UnHealthyHostCount',
    statistic: 'Maximum',
    dimensions: { LoadBalancer: i.alb, TargetGroup: i.tg },
    period: 60,
    evaluationPeriods: 5,
    comparisonOperator: 'GreaterThanThreshold',
    threshold: 0,
    treatMissingData: 'notBreaching',
  });
  assert.match(i.alb, /^app\/ops-alb\//);
  const http = alarm(stack, 'http5xx');
  assert.equal(await valueOf(http.comparisonOperator), 'GreaterThanThreshold');
  assert.equal(await valueOf(http.threshold), 10);
  assert.equal(await valueOf(http.evaluationPeriods), 1);
  const queries = (await valueOf(http.metricQueries))!;
  const metrics = queries.filter((q) => q.metric).map((q) => [q.id, q.metric!.namespace, q.metric!.metricName, q.metric!.stat, q.metric!.period, q.metric!.dimensions]);
  assert.deepEqual(metrics, [
    ['elb', 'AWS/ApplicationELB', 'HTTPCode_ELB_5XX_Count', 'Sum', 60, { LoadBalancer: i.alb }],
    ['target', 'AWS/ApplicationELB', 'HTTPCode_Target_5XX_Count', 'Sum', 60, { LoadBalancer: i.alb }],
  ]);
  const total = queries.filter((q) => q.returnData);
  assert.deepEqual(total.map((q) => q.expression), ['FILL(elb, 0) + FILL(target, 0)'], 'the alarm is on the sum of both');
});

test('RDS: CPU > 80 % for 10 minutes; free storage < 2 GiB', async () => {
  const i = await ids(stack);
  assert.deepEqual(await props(alarm(stack, 'dbCpu')), {
    namespace: 'AWS/RDS',
    metricName: 'CPUUtilization',
    statistic: 'Average',
    dimensions: { DBInstanceIdentifier: i.db },
    period: 60,
    evaluationPeriods: 10,
    comparisonOperator: 'GreaterThanThreshold',
    threshold: 80,
    treatMissingData: undefined,
  });
  const storage = await props(alarm(stack, 'dbStorage'));
  assert.equal(storage.metricName, 'FreeStorageSpace');
  assert.equal(storage.comparisonOperator, 'LessThanThreshold');
  assert.equal(storage.threshold, 2 * 1024 ** 3);
  assert.deepEqual(storage.dimensions, { DBInstanceIdentifier: i.db });
});

test('S3: bucket size above 500 GiB by default, configurable (bucketSizeAlarmGb)', async () => {
  const i = await ids(stack);
  const size = await props(alarm(stack, 'bucketSize'));
  assert.deepEqual({ ...size, threshold: undefined }, {
    namespace: 'AWS/S3',
    metricName: 'BucketSizeBytes',
    statistic: 'Average',
    dimensions: { BucketName: i.bucket, StorageType: 'StandardStorage' },
    period: 86400,
    evaluationPeriods: 1,
    comparisonOperator: 'GreaterThanThreshold',
    threshold: undefined,
    treatMissingData: 'notBreaching',
  });
  assert.equal(size.threshold, 500 * GiB);
  assert.equal(await valueOf(alarm(tuned, 'bucketSize').threshold), 50 * GiB);
});

test("the dashboard has the seed's widgets: ALB response time and requests, ECS CPU/memory, RDS CPU and connections, bucket size", async () => {
  const i = await ids(stack);
  assert.equal(await valueOf(stack.monitoring.dashboard.dashboardName), 'ops-health');
  const body = JSON.parse(await valueOf(stack.monitoring.dashboard.dashboardBody));
  const byTitle = Object.fromEntries(body.widgets.map((w: any) => [w.properties.title, w.properties]));
  const series = (title: string) => byTitle[title].metrics.map((m: unknown[]) => m.filter((x) => typeof x === 'string'));
  assert.deepEqual(series('ALB response time and request count'), [
    ['AWS/ApplicationELB', 'TargetResponseTime', 'LoadBalancer', i.alb],
    ['AWS/ApplicationELB', 'RequestCount', 'LoadBalancer', i.alb],
  ]);
  assert.deepEqual(series('ECS CPU and memory utilization'), [
    ['AWS/ECS', 'CPUUtilization', 'ClusterName', i.cluster, 'ServiceName', i.api],
    ['AWS/ECS', 'MemoryUtilization', 'ClusterName', i.cluster, 'ServiceName', i.api],
    ['AWS/ECS', 'CPUUtilization', 'ClusterName', i.cluster, 'ServiceName', i.worker],
    ['AWS/ECS', 'MemoryUtilization', 'ClusterName', i.cluster, 'ServiceName', i.worker],
  ]);
  assert.deepEqual(series('RDS CPU and connections'), [
    ['AWS/RDS', 'CPUUtilization', 'DBInstanceIdentifier', i.db],
    ['AWS/RDS', 'DatabaseConnections', 'DBInstanceIdentifier', i.db],
  ]);
  assert.deepEqual(series('S3 bucket size'), [['AWS/S3', 'BucketSizeBytes', 'BucketName', i.bucket, 'StorageType', 'StandardStorage']]);
  assert.equal(byTitle['S3 bucket size'].period, 86400, 'S3 storage metrics are daily');
  assert.ok(body.widgets.every((w: any) => w.properties.region === 'us-east-1'));
});

test('the api service scales between 1 and 3 tasks on CPU > 70 % and > 1000 requests per task per minute', async () => {
  const i = await ids(stack);
  const s = stack.scaling!;
  assert.equal(await valueOf(s.target.serviceNamespace), 'ecs');
  assert.equal(await valueOf(s.target.scalableDimension), 'ecs:service:DesiredCount');
  assert.equal(await valueOf(s.target.resourceId), `service/${i.cluster}/${i.api}`);
  assert.equal(await valueOf(s.target.minCapacity), 1);
  assert.equal(await valueOf(s.target.maxCapacity), 3);
  const tracking = async (p: typeof s.cpu) => {
    assert.equal(await valueOf(p.policyType), 'TargetTrackingScaling');
    assert.equal(await valueOf(p.resourceId), `service/${i.cluster}/${i.api}`);
    const c = (await valueOf(p.targetTrackingScalingPolicyConfiguration))!;
    return [c.predefinedMetricSpecification!.predefinedMetricType, c.predefinedMetricSpecification!.resourceLabel, c.targetValue];
  };
  assert.deepEqual(await tracking(s.cpu), ['ECSServiceAverageCPUUtilization', undefined, 70]);
  assert.deepEqual(await tracking(s.requests), ['ALBRequestCountPerTarget', `${i.alb}/${i.tg}`, 1000]);
  assert.equal(ofType('aws:appautoscaling/target:Target', 'ops-').length, 1, 'the worker does not scale (one GC at a time)');
});

test('scaling bounds and targets are configurable; apiDesiredCount 0 (first deploy) creates no scaling target', async () => {
  const s = tuned.scaling!;
  assert.deepEqual([await valueOf(s.target.minCapacity), await valueOf(s.target.maxCapacity)], [2, 6]);
  assert.equal((await valueOf(s.cpu.targetTrackingScalingPolicyConfiguration))!.targetValue, 50);
  assert.equal((await valueOf(s.requests.targetTrackingScalingPolicyConfiguration))!.targetValue, 500);
  assert.equal(paused.scaling, undefined);
  assert.equal(ofType('aws:appautoscaling/target:Target', 'paused-').length, 0);
  assert.equal(paused.monitoring.alarms.apiTasks, undefined);
});

test('hostedZoneId: an A alias record for domainName to the ALB, with target health; none without it', async () => {
  const r = tuned.dnsRecord!;
  assert.equal(await valueOf(r.zoneId), 'Z0123456789ABC');
  assert.equal(await valueOf(r.name), 'cache.example.com');
  assert.equal(await valueOf(r.type), 'A');
  assert.deepEqual(await valueOf(r.aliases), [
    { name: await valueOf(tuned.albDnsName), zoneId: await valueOf(tuned.alb!.zoneId), evaluateTargetHealth: true },
  ]);
  assert.equal(stack.dnsRecord, undefined);
  assert.equal(ofType('aws:route53/record:Record', 'ops-').length, 0);
});

test('signingKey: kept in a Secrets Manager secret, given to the api tasks only as LOFT_SIGNING_KEY for the default cache', async () => {
  const secret = tuned.signingKeySecret!;
  const arn = await valueOf(secret.arn);
  const version = ofType('aws:secretsmanager/secretVersion:SecretVersion', 'tuned-signing-key')[0]!;
  assert.equal(version.inputs.secretId, await valueOf(secret.id));
  assert.equal(secretInput(version.inputs.secretString), 'cache.example.com-1:c2VjcmV0');
  const container = async (mode: 'api' | 'worker' | 'migrate') => JSON.parse(await valueOf(tuned.taskDefinitions[mode].containerDefinitions))[0];
  const api = await container('api');
  assert.deepEqual(api.secrets.find((s: any) => s.name === 'LOFT_SIGNING_KEY'), { name: 'LOFT_SIGNING_KEY', valueFrom: arn });
  assert.ok(!JSON.stringify(api).includes('c2VjcmV0'), 'the key is not in the task definition');
  assert.deepEqual(api.environment.find((e: any) => e.name === 'LOFT_DEFAULT_CACHE'), { name: 'LOFT_DEFAULT_CACHE', value: 'main' });
  for (const mode of ['worker', 'migrate'] as const) {
    assert.ok(!(await container(mode)).secrets.some((s: any) => s.name === 'LOFT_SIGNING_KEY'), `${mode} does not sign`);
  }
  const policy = JSON.parse(await valueOf(tuned.executionRolePolicy.policy));
  const read = policy.Statement.find((s: any) => s.Sid === 'LoftSecrets');
  assert.ok(read.Resource.includes(arn), 'the execution role may read it');
  assert.equal(read.Resource.length, 3);
  assert.equal(stack.signingKeySecret, undefined, 'no secret without signingKey');
});
