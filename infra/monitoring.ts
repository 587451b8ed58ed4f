import * as pulumi from '@pulumi/pulumi';
import * as aws from '@pulumi/aws';
import type { LoftConfig } from './config.ts';

/**
 * The seed's "Alarms to Configure" and "CloudWatch Dashboard Example": every alarm notifies one
 * SNS topic (alarm and recovery); the dashboard shows the metrics the seed names.
 */

export const GiB = 1024 ** 3;

/** What the alarms and the dashboard watch; ids, not resources, so shared (existing) pieces work too. */
export interface Watched {
  clusterName: pulumi.Input<string>;
  /** ECS services by role; a service with 0 desired tasks gets no "no running task" alarm. */
  services: Array<{ role: 'api' | 'worker'; name: pulumi.Input<string>; desiredCount: number }>;
  albArnSuffix: pulumi.Input<string>;
  targetGroupArnSuffix: pulumi.Input<string>;
  dbInstanceIdentifier: pulumi.Input<string>;
  bucketName: pulumi.Input<string>;
  region: pulumi.Input<string>;
}

export interface Monitoring {
  topic: aws.sns.Topic;
  subscriptions: aws.sns.TopicSubscription[];
  alarms: Record<string, aws.cloudwatch.MetricAlarm>;
  dashboard: aws.cloudwatch.Dashboard;
}

export function createMonitoring(cfg: LoftConfig, w: Watched, tags: Record<string, string>): Monitoring {
  const n = cfg.name;
  const topic = new aws.sns.Topic(`${n}-alarms`, { tags });
  const subscriptions = cfg.alarmEmails.map(
    (email, i) => new aws.sns.TopicSubscription(`${n}-alarms-${i}`, { topic: topic.arn, protocol: 'email', endpoint: email }),
  );
  const notify = { alarmActions: [topic.arn], okActions: [topic.arn], tags };
  const alb = { LoadBalancer: w.albArnSuffix };
  const alarms: Record<string, aws.cloudwatch.MetricAlarm> = {};

  for (const svc of w.services.filter((s) => s.desiredCount > 0)) {
    // AWS/ECS publishes a service's CPU every minute while at least one task runs: no sample is no task.
    // (ECS/ContainerInsights RunningTaskCount says the same but needs Container Insights, billed per task.)
    alarms[`${svc.role}Tasks`] = new aws.cloudwatch.MetricAlarm(`${n}-${svc.role}-no-running-task`, {
      alarmDescription: `Loft ${svc.role} service has no running task (seed: ECS Task Stopped, page on-call immediately)`,
      namespace: 'AWS/ECS',
      metricName: 'CPUUtilization',
      dimensions: { ClusterName: w.clusterName, ServiceName: svc.name },
      statistic: 'SampleCount',
      period: 60,
      evaluationPeriods: 1,
      comparisonOperator: 'LessThanThreshold',
      threshold: 1,
      treatMissingData: 'breaching',
      ...notify,
    });
  }
  alarms.unhealthyTargets = new aws.cloudwatch.MetricAlarm(`${n}-unhealthy-targets`, {
    alarmDescription: 'ALB has unhealthy Loft targets for 5 minutes (seed: page on-call)',
    namespace: 'AWS/ApplicationELB',
    metricName: 'UnHealthyHostCount',
    dimensions: { ...alb, TargetGroup: w.targetGroupArnSuffix },
    statistic: 'Maximum',
    period: 60,
    evaluationPeriods: 5,
    comparisonOperator: 'GreaterThanThreshold',
    threshold: 0,
    treatMissingData: 'notBreaching',
    ...notify,
  });
  alarms.dbCpu = new aws.cloudwatch.MetricAlarm(`${n}-db-cpu`, {
    alarmDescription: 'RDS CPU above 80 % for 10 minutes (seed: alert DevOps)',
    namespace: 'AWS/RDS',
    metricName: 'CPUUtilization',
    dimensions: { DBInstanceIdentifier: w.dbInstanceIdentifier },
    statistic: 'Average',
    period: 60,
    evaluationPeriods: 10,
    comparisonOperator: 'GreaterThanThreshold',
    threshold: 80,
    ...notify,
  });
  alarms.dbStorage = new aws.cloudwatch.MetricAlarm(`${n}-db-free-storage`, {
    alarmDescription: 'RDS free storage below 2 GiB (seed: alert DevOps)',
    namespace: 'AWS/RDS',
    metricName: 'FreeStorageSpace',
    dimensions: { DBInstanceIdentifier: w.dbInstanceIdentifier },
    statistic: 'Minimum',
    period: 300,
    evaluationPeriods: 1,
    comparisonOperator: 'LessThanThreshold',
    threshold: 2 * GiB,
    ...notify,
  });
  // 5xx made by the ALB itself (no healthy target, timeouts) and passed on from the tasks, per minute.
  const count5xx = (id: string, metricName: string) => ({
    id,
    metric: { namespace: 'AWS/ApplicationELB', metricName, dimensions: alb, stat: 'Sum', period: 60 },
  });
  alarms.http5xx = new aws.cloudwatch.MetricAlarm(`${n}-http-5xx`, {
    alarmDescription: 'More than 10 HTTP 5xx answers per minute at the ALB (seed: High Error Rate, alert DevOps)',
    metricQueries: [
      count5xx('elb', 'HTTPCode_ELB_5XX_Count'),
      count5xx('target', 'HTTPCode_Target_5XX_Count'),
      { id: 'total', expression: 'FILL(elb, 0) + FILL(target, 0)', label: '5xx per minute', returnData: true },
    ],
    evaluationPeriods: 1,
    comparisonOperator: 'GreaterThanThreshold',
    threshold: 10,
    treatMissingData: 'notBreaching',
    ...notify,
  });
  alarms.bucketSize = new aws.cloudwatch.MetricAlarm(`${n}-bucket-size`, {
    alarmDescription: `Cache bucket above ${cfg.bucketSizeAlarmGb} GiB (seed: warning, cost review)`,
    namespace: 'AWS/S3',
    metricName: 'BucketSizeBytes',
    dimensions: { BucketName: w.bucketName, StorageType: 'StandardStorage' },
    statistic: 'Average',
    // S3 storage metrics are daily.
    period: 86400,
    evaluationPeriods: 1,
    comparisonOperator: 'GreaterThanThreshold',
    threshold: cfg.bucketSizeAlarmGb * GiB,
    treatMissingData: 'notBreaching',
    ...notify,
  });

  const dashboard = new aws.cloudwatch.Dashboard(`${n}`, {
    dashboardName: `${n}-health`,
    dashboardBody: dashboardBody(w),
  });
  return { topic, subscriptions, alarms, dashboard };
}

/** The seed's widgets, one graph per concern: ALB, ECS, RDS, S3 (plus target health for phase 5's list). */
export function dashboardBody(w: Watched): pulumi.Output<string> {
  const widget = (x: number, y: number, title: string, metrics: unknown[][], extra: Record<string, unknown> = {}) => ({
    type: 'metric',
    x,
    y,
    width: 12,
    height: 6,
    properties: { title, region: w.region, view: 'timeSeries', period: 300, metrics, ...extra },
  });
  const alb = ['LoadBalancer', w.albArnSuffix];
  const ecs = w.services.flatMap((s) => [
    ['AWS/ECS', 'CPUUtilization', 'ClusterName', w.clusterName, 'ServiceName', s.name, { stat: 'Average', label: `${s.role} CPU %` }],
    ['AWS/ECS', 'MemoryUtilization', 'ClusterName', w.clusterName, 'ServiceName', s.name, { stat: 'Average', label: `${s.role} memory %` }],
  ]);
  return pulumi.jsonStringify({
    widgets: [
      widget(0, 0, 'ALB response time and request count', [
        ['AWS/ApplicationELB', 'TargetResponseTime', ...alb, { stat: 'Average', label: 'response time (s)' }],
        ['AWS/ApplicationELB', 'RequestCount', ...alb, { stat: 'Sum', label: 'requests', yAxis: 'right' }],
      ]),
      widget(12, 0, 'ALB target health', [
        ['AWS/ApplicationELB', 'HealthyHostCount', ...alb, 'TargetGroup', w.targetGroupArnSuffix, { stat: 'Minimum', label: 'healthy' }],
        ['AWS/ApplicationELB', 'UnHealthyHostCount', ...alb, 'TargetGroup', w.targetGroupArnSuffix, { stat: 'Maximum', label: 'unhealthy' }],
      ]),
      widget(0, 6, 'ECS CPU and memory utilization', ecs),
      widget(12, 6, 'RDS CPU and connections', [
        ['AWS/RDS', 'CPUUtilization', 'DBInstanceIdentifier', w.dbInstanceIdentifier, { stat: 'Average', label: 'CPU %' }],
        ['AWS/RDS', 'DatabaseConnections', 'DBInstanceIdentifier', w.dbInstanceIdentifier, { stat: 'Average', label: 'connections', yAxis: 'right' }],
      ]),
      widget(0, 12, 'S3 bucket size', [
        ['AWS/S3', 'BucketSizeBytes', 'BucketName', w.bucketName, 'StorageType', 'StandardStorage', { stat: 'Average', label: 'bytes' }],
      ], { period: 86400 }),
    ],
  });
}
