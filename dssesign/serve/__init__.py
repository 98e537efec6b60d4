"""`dssesign serve`: the HTTP signing service and its building blocks.

Nothing is imported here: `dssesign.serve.config`, `.tokens` and `.quota` each pull in only
what they need (PyJWT, redis), so importing one never loads the web stack.
"""
