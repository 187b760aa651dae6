"""The WSGI entry point: the studio's HTTP requests on a threaded server, without an event loop (websockets: ``asgi``).

Under load a web process spends less CPU per label here than under the ASGI entry point
(``bench/README.md``): no event loop, and no hop from it to a request's thread and back. A
deployment that wants that serves HTTP from this entry point on a few threads per process
(Granian's WSGI interface, as ``bench/cluster.py`` runs it), routes ``/ws/`` to
``feedback_app.asgi``, and sheds load in front (nginx's ``limit_conn``): here requests past the
server's threads wait in its queue, where ``asgi`` answers them 503 itself (HTTP_MAX_IN_FLIGHT).
A process serves its labeling calls one at a time, everything else beside them (``labeling_lane``).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "feedback_app.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

django_application = get_wsgi_application()

from django.conf import settings  # noqa: E402  (after Django is set up)

from feedback_app.labeling_lane import lane_wrapped  # noqa: E402
from feedback_app.request_threads import collector_tuned  # noqa: E402

application = lane_wrapped(django_application, wait_ms=settings.LABELING_LANE_WAIT_MS)

collector_tuned(settings.WEB_GC_THRESHOLD)  # last: what the lines above made is frozen with the rest
