import * as pulumi from '@pulumi/pulumi';

/** What the program registered: one entry per resource, with the inputs it was given. */
export interface Registered {
  type: string;
  name: string;
  id: string;
  inputs: Record<string, any>;
}

export const ACCOUNT = '123456789012';
export const REGION = 'us-east-1';
export const registered: Registered[] = [];
export const invoked: Array<{ token: string; inputs: Record<string, any> }> = [];

/**
 * Installs Pulumi mocks: no engine, no CLI, no provider plugin, no network. Computed attributes
 * (ids, ARNs, DNS names) get deterministic fake values derived from the resource name.
 */
export function installMocks(project = 'loft', stack = 'test'): void {
  pulumi.runtime.setMocks(
    {
      newResource(args: pulumi.runtime.MockResourceArgs) {
        const id = `${args.name}_id`;
        const state: Record<string, any> = { ...args.inputs };
        const service = args.type.split(':')[1]!.split('/')[0]!;
        state.arn ??= `arn:aws:${service}:${REGION}:${ACCOUNT}:${args.name}`;
        state.name ??= args.name;
        switch (args.type) {
          case 'aws:s3/bucket:Bucket':
            state.bucket ??= `${args.name}-0a1b2c3`;
            state.arn = `arn:aws:s3:::${state.bucket}`;
            state.region = REGION;
            break;
          case 'aws:rds/instance:Instance':
            state.address = `${args.name}.cx0example.${REGION}.rds.amazonaws.com`;
            state.endpoint = `${state.address}:5432`;
            state.port ??= 5432;
            state.identifier = `${args.name}-0123abcd`;
            break;
          case 'aws:ecr/repository:Repository':
            state.repositoryUrl = `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/${args.name}`;
            break;
          case 'aws:lb/loadBalancer:LoadBalancer':
            state.dnsName = `${args.name}-1234567890.${REGION}.elb.amazonaws.com`;
            state.arnSuffix = `app/${args.name}/50dc6c495c0c9188`;
            state.zoneId = 'Z35SXDOTRQ7X7K';
            break;
          case 'aws:lb/targetGroup:TargetGroup':
            state.arnSuffix = `targetgroup/${args.name}/73e2d6bc24d8a067`;
            break;
          case 'aws:cloudwatch/logGroup:LogGroup':
            state.arn = `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:${state.name}`;
            break;
          case 'aws:secretsmanager/secret:Secret':
            state.arn = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${args.name}-AbCdEf`;
            break;
          case 'aws:rds/subnetGroup:SubnetGroup':
            state.name = args.name;
            break;
          case 'random:index/randomPassword:RandomPassword':
            state.result = 'mockpasswordmockpasswordmockpass';
            break;
          case 'random:index/randomBytes:RandomBytes':
            state.base64 = Buffer.alloc(32, 7).toString('base64');
            break;
        }
        registered.push({ type: args.type, name: args.name, id, inputs: args.inputs });
        return { id, state };
      },
      call(args: pulumi.runtime.MockCallArgs) {
        invoked.push({ token: args.token, inputs: args.inputs });
        switch (args.token) {
          case 'aws:index/getAvailabilityZones:getAvailabilityZones':
            return { names: [`${REGION}a`, `${REGION}b`, `${REGION}c`], zoneIds: ['use1-az1', 'use1-az2', 'use1-az4'] };
          case 'aws:index/getRegion:getRegion':
            return { id: REGION, name: REGION, region: REGION };
          case 'aws:lb/getLoadBalancer:getLoadBalancer':
            return { arn: args.inputs.arn, arnSuffix: 'app/shared-alb/0f1e2d3c4b5a6978', dnsName: 'shared-alb-42.us-east-1.elb.amazonaws.com', zoneId: 'Z35SXDOTRQ7X7K' };
          default:
            return {};
        }
      },
    },
    project,
    stack,
    false,
  );
}

/** The resolved value of an Output (or plain input). */
export function valueOf<T>(o: pulumi.Input<T> | pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => pulumi.output(o).apply((v) => resolve(v as T)));
}

/** Resolved values of every Input in a (shallow) list. */
export function valuesOf<T>(list: pulumi.Input<T>[]): Promise<T[]> {
  return Promise.all(list.map((x) => valueOf(x)));
}

/** Resources of a type (`aws:ecs/service:Service`), optionally narrowed by a name prefix. */
export function ofType(type: string, namePrefix = ''): Registered[] {
  return registered.filter((r) => r.type === type && r.name.startsWith(namePrefix));
}

/** Waits until registrations settle (every resource's inputs resolved and its mock called). */
export async function settle(): Promise<void> {
  let last = -1;
  while (last !== registered.length) {
    last = registered.length;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Pulumi's marker of a secret value in mocked resource inputs. */
const SECRET_SIG = '4dabf18193072939515e22adb298388d';
const SECRET_VALUE = '1b47061264138c4ac30d75fd1eb44270';

/** The plain value of an input that the program marked secret; throws if it is not secret. */
export function secretInput(v: any): any {
  if (v === null || typeof v !== 'object' || v[SECRET_SIG] !== SECRET_VALUE) {
    throw new Error(`expected a secret input, got ${JSON.stringify(v)}`);
  }
  return v.value;
}
