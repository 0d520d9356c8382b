"""The HTTP baseline: a trivial FastAPI endpoint that returns the body it gets, served like theraclaim."""

from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()


@app.post("/echo")
async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/fhir+json")
