"""004's ``scheduler/module/sync_tasks.py``: zero-argument functions."""


def sync_project_data():
    """同步项目数据"""
    return "synced"


def daily_report():
    """生成日报"""
    return "reported"
