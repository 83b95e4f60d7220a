"""A sandbox anyone can open: a demo EHR, a FHIR server with synthetic patients, SMART sign-in and
the service, all on loopback (``python -m cds_sandbox``; ``scripts/sandbox.sh``).

Its pieces (FHIR test server, SMART authorization server, EHR simulator) are also what the
end-to-end tests run against, so the demo shows what the tests check.
"""
