// Drives the server at $FHIR_BASE with fhir-kit-client (npm) the way an integrator would and prints
// what it saw as one JSON object; tests/api/test_fhir_kit_client.py asserts on it.
const Client = require('fhir-kit-client');

async function main() {
  const client = new Client({ baseUrl: process.env.FHIR_BASE });
  const seen = {};
  const statement = await client.capabilityStatement();
  seen.fhirVersion = statement.fhirVersion;
  let page = await client.search({ resourceType: 'Claim', searchParams: { patient: 'pat-1', _count: 2 } });
  seen.total = page.total;
  seen.paged = [];
  while (page) {
    for (const entry of page.entry || []) seen.paged.push(entry.resource.id);
    page = await client.nextPage({ bundle: page });
  }
  const posted = await client.search({
    resourceType: 'Claim', searchParams: { patient: 'pat-1' }, options: { postSearch: true },
  });
  seen.postedTotal = posted.total;
  const included = await client.search({ resourceType: 'Claim', searchParams: { _include: 'Claim:patient', _count: 1 } });
  seen.includedTypes = (included.entry || []).map((e) => `${e.resource.resourceType}:${e.search.mode}`);
  const claim = included.entry[0].resource;
  const patient = await client.resolve({ reference: claim.patient.reference });
  seen.resolvedPatient = patient.id;
  const encounter = await client.resolve({ reference: claim.item[0].encounter[0].reference });
  seen.resolvedEncounter = encounter.resourceType;
  const history = await client.history({ resourceType: 'Claim', id: claim.id });
  seen.historyType = history.type;
  const validated = await client.operation({
    name: 'validate', resourceType: 'Claim', input: { resourceType: 'Claim', status: 'nonsense' },
  });
  seen.validateIssues = validated.issue.length;
  const visit = JSON.parse(process.env.VISIT);
  const again = await client.operation({
    name: 'from-encounter', resourceType: 'Claim', input: visit,
    options: { headers: { 'If-None-Exist': 'encounter=enc-0' } },
  });
  seen.ifNoneExist = again.resourceType;
  const answer = await client.transaction({ body: JSON.parse(process.env.TRANSACTION) });
  seen.transaction = answer.type;
  try {
    await client.search({ resourceType: 'Claim', searchParams: { subject: 'pat-1' } });
    seen.unknownParameter = 'accepted';
  } catch (error) {
    seen.unknownParameter = error.response ? error.response.status : String(error);
  }
  process.stdout.write(JSON.stringify(seen));
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n${JSON.stringify(error.response && error.response.data)}\n`);
  process.exit(1);
});
