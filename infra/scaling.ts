import * as pulumi from '@pulumi/pulumi';
import * as aws from '@pulumi/aws';
import type { LoftConfig } from './config.ts';

/** The seed's scaling rule for the api service: 1–3 tasks, on CPU > 70 % or > 1000 requests/min per task. */
export interface ApiScaling {
  target: aws.appautoscaling.Target;
  cpu: aws.appautoscaling.Policy;
  requests: aws.appautoscaling.Policy;
}

export function createApiScaling(
  cfg: LoftConfig,
  tags: Record<string, string>,
  ids: { clusterName: pulumi.Input<string>; serviceName: pulumi.Input<string>; albArnSuffix: pulumi.Input<string>; targetGroupArnSuffix: pulumi.Input<string> },
): ApiScaling {
  const n = cfg.name;
  const target = new aws.appautoscaling.Target(`${n}-api`, {
    serviceNamespace: 'ecs',
    scalableDimension: 'ecs:service:DesiredCount',
    resourceId: pulumi.interpolate`service/${ids.clusterName}/${ids.serviceName}`,
    minCapacity: cfg.apiMinCount,
    maxCapacity: cfg.apiMaxCount,
    tags,
  });
  const on = { serviceNamespace: target.serviceNamespace, scalableDimension: target.scalableDimension, resourceId: target.resourceId };
  // Target tracking scales out fast and in slowly: a task stopping mid-download costs more than an idle one.
  const cooldowns = { scaleOutCooldown: 60, scaleInCooldown: 300 };
  const cpu = new aws.appautoscaling.Policy(`${n}-api-cpu`, {
    ...on,
    policyType: 'TargetTrackingScaling',
    targetTrackingScalingPolicyConfiguration: {
      predefinedMetricSpecification: { predefinedMetricType: 'ECSServiceAverageCPUUtilization' },
      targetValue: cfg.scaleCpuPercent,
      ...cooldowns,
    },
  });
  // ALBRequestCountPerTarget is the requests per task per minute.
  const requests = new aws.appautoscaling.Policy(`${n}-api-requests`, {
    ...on,
    policyType: 'TargetTrackingScaling',
    targetTrackingScalingPolicyConfiguration: {
      predefinedMetricSpecification: {
        predefinedMetricType: 'ALBRequestCountPerTarget',
        resourceLabel: pulumi.interpolate`${ids.albArnSuffix}/${ids.targetGroupArnSuffix}`,
      },
      targetValue: cfg.scaleRequestsPerTarget,
      ...cooldowns,
    },
  });
  return { target, cpu, requests };
}
