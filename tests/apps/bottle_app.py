"""A real Bottle application (see :mod:`tests.apps`)."""
import bottle

app = bottle.Bottle(catchall=True)


@app.get("/hello")
def hello():
    return {"hello": "bottle"}


@app.get("/whoami", name="whoami")
def whoami():
    return {"url": app.get_url("whoami")}


@app.get("/boom")
def boom():
    raise RuntimeError("bottle view exploded /secret/path")


@app.get("/only-get")
def only_get():
    return {"method": bottle.request.method}


@app.get("/remote-user")
def remote_user():
    return {"remote_user": bottle.request.environ.get("REMOTE_USER")}


application = app
