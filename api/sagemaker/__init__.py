"""The SageMaker wire API: boto3's `sagemaker` and `sagemaker-runtime` clients, unchanged.

A translation layer over the native services (api/services/), never a second
implementation of their behaviour: `wire.py` recognises the two AWS protocols
(AWS JSON 1.1 `POST /` with `X-Amz-Target: SageMaker.<Operation>` for the
control plane; REST-JSON `POST /endpoints/{name}/invocations` and
`.../async-invocations` for the runtime), `sigv4.py` verifies signatures with
botocore's own signer, `control.py` dispatches each operation to `models.py`,
`endpoints.py`, `transforms.py` or `components.py` (inference components),
`runtime.py` translates the invocations,
`fields.py` says which fields each operation takes (and which arrive later),
`mapping.py` holds the pure field-by-field translation, `store.py` the SageMaker
documents, `errors.py` AWS's error shape.
docs/sagemaker.md is the user's guide.
"""
