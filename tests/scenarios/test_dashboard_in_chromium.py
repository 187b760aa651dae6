"""End to end in a real headless Chromium: live pushes reach open pages without a reload.

Pushes cross processes (the daphne child serves the pages, the test process activates
policies), so the channel layer is a real Redis both share.
"""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction

from feedback_app import tasks
from feedback_app.events import DASHBOARD_THROTTLE_SECONDS
from feedback_app.models import PolicyVersion, PreferenceLabel, Role
from feedback_app.services.accounts import user_create
from feedback_app.services.versions import version_activate
from tests.conftest import csp_watch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a long demo password"
TIMEOUT_MS = 30_000  # waits end as soon as the page is ready; the margin is for a loaded CI machine

# Counts the websocket events htmx reports on each page, so a test can wait for a connection.
WS_EVENTS = """
window.wsEvents = {open: 0, message: 0, close: 0};
document.addEventListener("htmx:wsOpen", () => window.wsEvents.open++);
document.addEventListener("htmx:wsAfterMessage", () => window.wsEvents.message++);
document.addEventListener("htmx:wsClose", () => window.wsEvents.close++);
"""


@pytest.fixture
def redis_live_server(redis_channel_layer, asgi_live_server):
    """The daphne server, forked after the channel layer was pointed at the shared Redis."""
    return asgi_live_server


@pytest.fixture
def no_follow_up_tasks(monkeypatch):
    """Keep a policy swap from generating comparisons or scoring them (Celery runs eagerly here)."""
    monkeypatch.setattr(tasks.comparisons_supply, "delay", lambda *args, **kwargs: None)
    monkeypatch.setattr(tasks.comparisons_rm_score, "delay", lambda *args, **kwargs: None)


def log_in(context, server: str, path: str, username: str):
    page = context.new_page()
    page.csp_violations = csp_watch(page)
    page.add_init_script(WS_EVENTS)
    page.goto(f"{server}{path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    if page.locator("p.error").count():  # refused: say what the database held (a CI run once saw this, unexplained)
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.filter(username=username).first()
        pytest.fail(f"the login of {username} was refused at {page.url}; the user exists: {user is not None}, "
                    f"is active: {user and user.is_active}, the password matches: {user and user.check_password(PASSWORD)}")
    page.wait_for_function("() => window.wsEvents && window.wsEvents.message > 0", timeout=TIMEOUT_MS)  # the state sent on connect
    return page


def label_one(page) -> None:
    """Label the comparison shown with the keyboard; return once the next is shown and the label is stored (today's count moved)."""
    shown = page.get_attribute("#workspace", "data-comparison")
    count = int(page.inner_text("#today-count"))
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => document.querySelector('#workspace').dataset.comparison !== '{shown}'", timeout=TIMEOUT_MS)
    page.wait_for_function(f"() => document.querySelector('#today-count').textContent === '{count + 1}'", timeout=TIMEOUT_MS)


def activate(version: PolicyVersion) -> None:
    """Activate ``version`` and let its after-commit push run, from a thread of its own.

    Playwright's sync API keeps an event loop running in the test's thread, where
    async_to_sync refuses to run: the push would be logged and dropped.
    """

    def work() -> None:
        try:
            with transaction.atomic():
                version_activate(version=version, user=None, action="promote", reason="browser test")
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(work).result(timeout=30)


def test_dashboard_counts_labels_live_while_a_rater_labels(redis_live_server, browser, make_comparisons):
    """The researcher's counters and labels chart follow a rater's labels without a reload."""
    make_comparisons(6)
    user_create(username="kim", role=Role.RATER, password=PASSWORD)
    user_create(username="rhea", role=Role.RESEARCHER, password=PASSWORD)

    dashboard = log_in(browser.new_context(), redis_live_server, "/dashboard/", "rhea")
    dashboard.wait_for_selector("#live-status[data-state=open]")
    assert dashboard.inner_text("[data-testid=labels-today]") == "0"
    rater = log_in(browser.new_context(), redis_live_server, "/label/", "kim")

    label_one(rater)
    dashboard.wait_for_function("() => document.querySelector('[data-testid=labels-today]').textContent === '1'", timeout=TIMEOUT_MS)

    # Dashboards hear of labels at most once per throttle window from each process: labels
    # inside the window wait for the next push, which a label after the window brings.
    label_one(rater)
    label_one(rater)
    rater.wait_for_timeout(DASHBOARD_THROTTLE_SECONDS * 1000 + 200)
    label_one(rater)
    dashboard.wait_for_function("() => document.querySelector('[data-testid=labels-today]').textContent === '4'", timeout=TIMEOUT_MS)
    assert PreferenceLabel.objects.filter(rater__username="kim").count() == 4
    assert dashboard.inner_text("[data-testid=open-comparisons]") == "2"
    assert dashboard.evaluate("Chart.getChart('chart-labels').data.datasets[0].data.reduce((a, b) => a + b, 0)") == 4

    assert dashboard.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert dashboard.evaluate("window.wsEvents.open") == 1
    assert rater.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert dashboard.csp_violations == [] and rater.csp_violations == []  # pushed partials and charts included


def test_rater_sees_a_policy_swap_live_and_recovers_a_missed_one_on_reconnect(redis_live_server, browser, make_comparisons, no_follow_up_tasks):
    """A swap shows a toast and a new badge in place; a client that was away reads the badge on reconnect."""
    make_comparisons(2)
    user_create(username="kim", role=Role.RATER, password=PASSWORD)
    first, second, third = (PolicyVersion.objects.create(name=name, path=f"/nowhere/{name}") for name in ("policy-v1", "policy-v2", "policy-v3"))
    activate(first)

    # Every rater websocket passes through this route, so the test can cut one as a network would.
    routes = []

    def relay(ws):
        routes.append((ws, ws.connect_to_server()))

    context = browser.new_context()
    context.route_web_socket("**/ws/rater/", relay)
    page = log_in(context, redis_live_server, "/label/", "kim")
    assert page.inner_text("#policy-badge strong") == "policy-v1"
    assert page.locator("[data-testid=policy-toast]").count() == 0

    activate(second)
    toast = page.locator("[data-testid=policy-toast]")
    toast.wait_for(state="visible", timeout=TIMEOUT_MS)
    assert "policy-v2" in toast.inner_text()
    assert page.inner_text("#policy-badge strong") == "policy-v2"
    assert "changed" in page.get_attribute("#policy-badge", "class")

    # The connection drops (1012: the server restarts); the swap happens while the page is away.
    ws, server = routes[-1]
    server.close()
    ws.close(code=1012, reason="service restart")
    activate(third)
    page.wait_for_function("() => document.querySelector('#policy-badge strong').textContent === 'policy-v3'", timeout=TIMEOUT_MS)
    assert page.evaluate("window.wsEvents") == {"open": 2, "message": 3, "close": 1}
    assert toast.count() == 1  # the toast was missed; the badge came with the state sent on connect
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert page.csp_violations == []


def test_an_open_dashboard_redraws_its_model_charts_when_a_reward_model_goes_live(redis_live_server, browser, settings, no_follow_up_tasks):
    """A researcher watching the loop sees the new version's point and its calibration without a reload; the labels chart stays.
    The state sent on connect carries the chart data: the page keeps the charts it drew from the same data, and a page that
    was away when a version went live redraws them on reconnect."""
    from feedback_app.models import RewardModelVersion

    settings.POLICY_AFTER_REWARD_PROMOTION = False  # the promotion here is the test's, not the start of a policy update
    user_create(username="rhea", role=Role.RESEARCHER, password=PASSWORD)
    RewardModelVersion.objects.create(name="rm-00001", path="reward/rm-00001", status="active", metrics={"val_accuracy": 0.6, "val_loss": 0.68})
    routes = []  # the dashboard's websockets pass through here, so the test can cut one as a network would
    context = browser.new_context()
    context.route_web_socket("**/ws/dashboard/", lambda ws: routes.append((ws, ws.connect_to_server())))
    context.add_init_script("window.addEventListener('load', () => { window.drawnAtLoad = Chart.getChart('chart-reward'); });")
    dashboard = log_in(context, redis_live_server, "/dashboard/", "rhea")
    assert dashboard.evaluate("Chart.getChart('chart-reward') === window.drawnAtLoad")  # the data on connect was the page's
    assert dashboard.evaluate("Chart.getChart('chart-reward').data.labels") == ["rm-00001"]
    assert dashboard.inner_text("#calibration-of").strip() == "(rm-00001)"  # no ECE recorded: none shown
    second = RewardModelVersion.objects.create(name="rm-00002", path="reward/rm-00002", metrics={
        "val_accuracy": 0.7, "val_loss": 0.61, "val_ece": 0.05, "calibration": [{"p_mean": 0.75, "accuracy": 0.7, "count": 12}]})
    labels_chart = dashboard.evaluate_handle("Chart.getChart('chart-labels')")
    activate(second)
    dashboard.wait_for_function("() => Chart.getChart('chart-reward').data.labels.length === 2", timeout=TIMEOUT_MS)
    assert dashboard.evaluate("Chart.getChart('chart-reward').data.datasets[0].data") == [0.6, 0.7]
    assert dashboard.evaluate("Chart.getChart('chart-calibration').data.datasets[0].data.length") == 1
    assert "rm-00002, ECE 0.050" in dashboard.inner_text("#calibration-of")
    assert dashboard.evaluate("(c) => c === Chart.getChart('chart-labels')", labels_chart)  # not redrawn: its own live update

    ws, server = routes[-1]  # the connection drops; a version goes live while the page is away
    server.close()
    ws.close(code=1012, reason="service restart")
    activate(RewardModelVersion.objects.create(name="rm-00003", path="reward/rm-00003", metrics={"val_accuracy": 0.8, "val_loss": 0.5}))
    dashboard.wait_for_function("() => Chart.getChart('chart-reward').data.labels.length === 3", timeout=TIMEOUT_MS)
    assert dashboard.evaluate("window.wsEvents.open") == 2 and "rm-00003" in dashboard.inner_text("#calibration-of")
    assert dashboard.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert dashboard.csp_violations == []


CSP_PAGES = [
    "/dashboard/", "/dashboard/models/", "/dashboard/quality/", "/dashboard/review/", "/dashboard/arena/",
    "/admin/", "/admin/feedback_app/trainingrun/", "/admin/feedback_app/prompt/", "/admin/feedback_app/prompt/import/",
    "/admin/feedback_app/preferencelabel/", "/admin/feedback_app/preferencelabel/export/", "/admin/feedback_app/apitoken/add/",
    "/admin/auth/user/", "/admin/feedback_app/comparison/1/change/", "/api/v1/stats/",
]


def test_dashboard_admin_and_api_pages_pass_the_content_security_policy(asgi_live_server, browser, make_comparisons):
    """Every researcher page (charts, a running run's progress bar, the admin, the browsable API) has no CSP violation."""
    from feedback_app.models import Comparison, TrainingRun

    make_comparisons(3)
    TrainingRun.objects.create(kind="reward_fast", status="running", progress={"phase": "heads", "step": 2, "total_steps": 8, "loss": 0.6})
    user_create(username="ada", role=Role.ADMIN, password=PASSWORD)
    page = browser.new_context().new_page()
    violations = csp_watch(page)
    page.goto(f"{asgi_live_server}/login/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    first = Comparison.objects.order_by("pk").first().pk
    for path in CSP_PAGES:
        response = page.goto(f"{asgi_live_server}{path.replace('/1/', f'/{first}/')}")
        assert response.status == 200, path
        page.wait_for_load_state("networkidle")
        assert violations == [], path
    page.goto(f"{asgi_live_server}/dashboard/")
    page.wait_for_selector("#training-run progress")
    assert page.evaluate("Chart.getChart('chart-labels') !== undefined")
    assert violations == []


@pytest.fixture
def echo_policy(monkeypatch):
    """Replace the policy before the live server forks (the child inherits it): each reply echoes its prompt."""
    from feedback_app import training_bridge

    monkeypatch.setattr(training_bridge, "replies_generate", lambda *, prompts, **_: [f"echo {k}: {text}" for k, (text, _) in enumerate(prompts)])


def test_sample_replies_arrive_in_the_versions_page_without_a_reload(echo_policy, asgi_live_server, browser):
    """The samples form posts with htmx: the panel is replaced in place, the page stays, nothing breaks the CSP."""
    PolicyVersion.objects.create(name="policy-base", path="policy/policy-base", status="active")
    user_create(username="ada", role=Role.RESEARCHER, password=PASSWORD)
    page = browser.new_context().new_page()
    violations = csp_watch(page)
    page.goto(f"{asgi_live_server}/login/?next=/dashboard/models/")
    page.fill("#id_username", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#samples form")
    # htmx is deferred: a click before it has processed the form posts it plainly (the page still works, but reloads)
    page.wait_for_function("() => window.htmx !== undefined && document.readyState === 'complete'", timeout=TIMEOUT_MS)
    page.evaluate("window.samePage = true")
    page.fill("#id_prompt", "Where is my parcel?")
    page.click("#samples button[type=submit]")
    page.wait_for_selector("[data-testid=sample-replies] li >> nth=2", timeout=TIMEOUT_MS)
    assert "echo 2: Where is my parcel?" in page.inner_text("[data-testid=sample-replies]")
    assert page.evaluate("window.samePage === true")
    assert violations == []


def test_new_comparisons_load_into_an_empty_queue_and_leave_a_busy_rater_alone(redis_live_server, browser, make_comparisons):
    """The queue notice reloads a page that shows "All caught up"; a page showing a comparison drops it without an error."""
    from feedback_app import events

    user_create(username="kim", role=Role.RATER, password=PASSWORD)
    context = browser.new_context()
    context.add_init_script('window.pushes = 0; document.addEventListener("htmx:wsBeforeMessage", () => window.pushes++);')
    page = log_in(context, redis_live_server, "/label/", "kim")
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    assert page.locator("#queue-notice").count() == 1 and page.locator("#label-form").count() == 0  # all caught up

    def supplied() -> None:  # from a thread of its own, like activate()
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(events.comparisons_supplied, count=2).result(timeout=30)

    make_comparisons(2)
    supplied()
    page.wait_for_selector("#label-form", timeout=TIMEOUT_MS)
    shown = page.get_attribute("#workspace", "data-comparison")

    pushes = page.evaluate("window.pushes")
    supplied()
    page.wait_for_function(f"() => window.pushes > {pushes}", timeout=TIMEOUT_MS)
    page.wait_for_timeout(1_000)  # the notice would reload 500 ms after it landed
    assert page.get_attribute("#workspace", "data-comparison") == shown
    assert errors == [] and page.csp_violations == []
