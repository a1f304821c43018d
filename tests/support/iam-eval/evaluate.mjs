// Evaluates a batch of AWS requests with @cloud-copilot/iam-simulate (AGPL-3.0; a test tool,
// installed by scripts/setup-emulators.sh, never shipped), for tests/support/iam_eval.rs.
//
// Standard input: a JSON array of requests, each
//   {"principal": ARN, "action": "svc:Action", "resource": ARN or "*", "resourceAccount": "123...",
//    "context": {"key": "value" | ["values"]}, "identityPolicies": [{"name": ..., "policy": JSON text}],
//    "resourcePolicy": JSON text or null}
// Standard output: a JSON array with, for each request in order,
//   {"result": "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied", "identity": ..., "resource": ...,
//    "sameAccount": bool, "ignoredContextKeys": [...]}
// or {"error": "..."} when the simulator refused the input (invalid policy, unknown action...).
// Service control and resource control policies are always empty (none in the emulator).
import { runSimulation } from '@cloud-copilot/iam-simulate'

const parse = (policy) => (typeof policy === 'string' ? JSON.parse(policy) : policy)

async function evaluate(request) {
  const simulation = {
    request: {
      principal: request.principal,
      action: request.action,
      resource: { resource: request.resource, accountId: request.resourceAccount },
      contextVariables: request.context ?? {}
    },
    identityPolicies: (request.identityPolicies ?? []).map((p) => ({
      name: p.name,
      policy: parse(p.policy)
    })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: request.resourcePolicy == null ? undefined : parse(request.resourcePolicy)
  }
  const outcome = await runSimulation(simulation, { simulationMode: 'Strict' })
  if (outcome.resultType === 'error') {
    return { error: JSON.stringify(outcome.errors) }
  }
  const results = outcome.resultType === 'single' ? [outcome.result] : outcome.results
  if (results.length !== 1) {
    return { error: `expected one simulated resource, got ${results.length} (a wildcard in ${request.resource}?)` }
  }
  const { analysis, ignoredContextKeys } = results[0]
  return {
    result: outcome.overallResult,
    identity: analysis.identityAnalysis?.result ?? null,
    resource: analysis.resourceAnalysis?.result ?? null,
    sameAccount: analysis.sameAccount,
    ignoredContextKeys: ignoredContextKeys ?? []
  }
}

let input = ''
process.stdin.setEncoding('utf8')
for await (const chunk of process.stdin) input += chunk
const requests = JSON.parse(input)
if (!Array.isArray(requests)) throw new Error('standard input must be a JSON array of requests')
const answers = []
for (const request of requests) {
  try {
    answers.push(await evaluate(request))
  } catch (e) {
    answers.push({ error: String(e?.stack ?? e) })
  }
}
process.stdout.write(JSON.stringify(answers) + '\n')
